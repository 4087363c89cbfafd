# Sourced by the cuda_*.sh checks: the Python packages a lent CUDA machine lacks, installed from the wheels
# carried in .whl/ (device README: deap 1.4.4 needs moocore, cffi, pycparser and platformdirs beside it),
# and the data root.
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
export EZNAS_DATA=${EZNAS_DATA:-$PWD/data} PYTHONUNBUFFERED=1
