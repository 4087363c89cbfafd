"""The data fill step: mirror copy, downloads over a local HTTP server, conversion, CLI errors."""
from __future__ import annotations

import copy
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from eznas.fetch.cli import main as fetch_main
from eznas.fetch.convert import fill_from_sources
from eznas.fetch.downloads import download, file_digest, source_url
from eznas.fetch.manifest import load_manifest, manual_notes
from eznas.fetch.mirror import fill_from_mirror
from eznas.fetch.safe_pickle import read_pandas_pickle
from eznas.errors import DataError
from eznas.spaces import get_space

REPO = Path(__file__).resolve().parents[1]
REAL_MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# ---------------------------------------------------------------------------------------------- mirror

MIRROR_FILES = {
    "nb201/table.csv": b"index,arch_str\n0,|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n",
    "cifar10/cifar10_train_tiny.npz": bytes(range(256)) * 4,
    "nds/darts.csv": b"genotype,valid_acc\n",
}


@pytest.fixture
def mirror(tmp_path: Path) -> SimpleNamespace:
    folder = tmp_path / "mirror"
    for rel, data in MIRROR_FILES.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    manifest = {"mirror": [{"path": rel, "sha256": sha(data)} for rel, data in MIRROR_FILES.items()]}
    return SimpleNamespace(folder=folder, manifest=manifest, root=tmp_path / "data")


def test_mirror_fill_copies_every_file(mirror):
    copied = fill_from_mirror(mirror.folder, mirror.root, mirror.manifest)
    assert sorted(copied) == sorted(MIRROR_FILES)
    for rel, data in MIRROR_FILES.items():
        assert (mirror.root / rel).read_bytes() == data
    assert not [p for p in files_under(mirror.root) if p.name.endswith(".part")]


def test_mirror_fill_twice_copies_nothing(mirror):
    fill_from_mirror(mirror.folder, mirror.root, mirror.manifest)
    mtimes = {p: p.stat().st_mtime_ns for p in files_under(mirror.root)}
    assert fill_from_mirror(mirror.folder, mirror.root, mirror.manifest) == []
    assert {p: p.stat().st_mtime_ns for p in files_under(mirror.root)} == mtimes


def test_mirror_fill_replaces_only_a_changed_file(mirror):
    fill_from_mirror(mirror.folder, mirror.root, mirror.manifest)
    (mirror.root / "nds/darts.csv").write_bytes(b"edited by hand\n")
    assert fill_from_mirror(mirror.folder, mirror.root, mirror.manifest) == ["nds/darts.csv"]
    assert (mirror.root / "nds/darts.csv").read_bytes() == MIRROR_FILES["nds/darts.csv"]


def test_corrupt_mirror_file_is_named_and_nothing_is_written(mirror):
    bad = mirror.folder / "cifar10/cifar10_train_tiny.npz"
    bad.write_bytes(b"truncated")
    with pytest.raises(DataError) as err:
        fill_from_mirror(mirror.folder, mirror.root, mirror.manifest)
    assert str(bad) in str(err.value) and "sha256" in str(err.value)
    assert files_under(mirror.root) == []


def test_missing_mirror_file_is_named(mirror):
    (mirror.folder / "nds/darts.csv").unlink()
    with pytest.raises(DataError, match="darts.csv is missing"):
        fill_from_mirror(mirror.folder, mirror.root, mirror.manifest)
    assert files_under(mirror.root) == []


def test_mirror_must_be_a_folder(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        fill_from_mirror(tmp_path / "nowhere", tmp_path / "data", {"mirror": []})


def test_real_manifest_matches_the_real_mirror():
    if not REAL_MIRROR.is_dir():
        pytest.skip(f"no mirror at {REAL_MIRROR}")
    entries = load_manifest()["mirror"]
    listed = {e["path"] for e in entries}
    for pattern in ("nb201/*.csv", "nds/darts_swap500_cifar10.csv", "cifar10/*.npz", "cifar100/*.npz",
                    "imagenet16-120/*.npz", "nbsuitezero_early/*.csv", "nbmacro/*.csv"):
        for path in REAL_MIRROR.glob(pattern):
            assert str(path.relative_to(REAL_MIRROR)) in listed
    for e in entries:
        assert file_digest(REAL_MIRROR / e["path"]) == e["sha256"], e["path"]


# ------------------------------------------------------------------------------------------- download


@pytest.fixture
def server(monkeypatch) -> SimpleNamespace:
    """A local HTTP server: ``routes`` maps a path to its body; paths in ``short`` announce a longer
    Content-Length than they send and then close the connection."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    routes: dict[str, bytes] = {}
    short: set[str] = set()
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            hits.append(self.path)
            body = routes.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + (1000 if self.path in short else 0)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if self.path in short else body)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(base=f"http://127.0.0.1:{httpd.server_port}", routes=routes, short=short, hits=hits)
    httpd.shutdown()
    httpd.server_close()


PAYLOAD = b"0123456789" * 5000


def test_download_installs_a_good_file(server, tmp_path):
    server.routes["/good.bin"] = PAYLOAD
    dest = tmp_path / "sub" / "good.bin"
    download(f"{server.base}/good.bin", dest, sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert files_under(tmp_path) == [dest]


def test_download_with_wrong_sha256_fails_and_leaves_no_file(server, tmp_path):
    server.routes["/good.bin"] = PAYLOAD
    dest = tmp_path / "good.bin"
    url = f"{server.base}/good.bin"
    with pytest.raises(DataError) as err:
        download(url, dest, "0" * 64)
    msg = str(err.value)
    assert url in msg and str(dest) in msg and "sha256" in msg and "\n" not in msg
    assert files_under(tmp_path) == []


def test_interrupted_download_fails_and_leaves_no_file(server, tmp_path):
    server.routes["/cut.bin"] = PAYLOAD
    server.short.add("/cut.bin")
    dest = tmp_path / "cut.bin"
    url = f"{server.base}/cut.bin"
    with pytest.raises(DataError) as err:
        download(url, dest, sha(PAYLOAD))
    msg = str(err.value)
    assert "interrupted" in msg and url in msg and str(dest) in msg and "\n" not in msg
    assert files_under(tmp_path) == []


def test_failed_download_keeps_the_file_already_there(server, tmp_path):
    dest = tmp_path / "kept.bin"
    dest.write_bytes(b"what the user had")
    with pytest.raises(DataError, match="HTTP 404"):
        download(f"{server.base}/missing.bin", dest, sha(PAYLOAD))
    assert dest.read_bytes() == b"what the user had"
    assert files_under(tmp_path) == [dest]


def test_source_base_replaces_scheme_and_host():
    url = "https://raw.githubusercontent.com/o/r/abc/x.csv"
    assert source_url(url, "http://127.0.0.1:9/") == "http://127.0.0.1:9/o/r/abc/x.csv"
    assert source_url(url, None) == url


def test_pickle_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    for protocol in (0, 2, 4, 5):
        path = tmp_path / f"evil{protocol}.pd"
        path.write_bytes(pickle.dumps({"x": Evil()}, protocol=protocol))
        with pytest.raises(DataError, match=r"refusing to unpickle.*system"):
            read_pandas_pickle(path)
    assert not (Path.cwd() / "pwned").exists()


# ------------------------------------------------------------------------------- public sources (fake)

# The first rows of the real sources (v-tao/nats-bench-landscape nats_bench.csv, rows 0-2; pym1024/SWAP
# DARTS_archs_CIFAR10.csv, rows 0-1, genotypes shortened) and the mirror lines they must become
# (the NASWOT score of row 2 is made NaN here, to check that it is written as an empty field).
A_CSV = (
    "CIFAR10TestAccuracy200Epochs,CIFAR100TestAccuracy200Epochs,ImageNetTestAccuracy200Epochs,ArchitectureString,UniqueString\n"
    "85.86333333333334,52.913333294677734,26.6333332739936,|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|,(0)@avg_pool_3x3+(0)@nor_conv_1x1\n"
    "93.66000000000001,70.29333326822916,44.03333332316081,|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|,((0)@nor_conv_3x3)@avg_pool_3x3+0\n"
    "85.74000000000001,54.866666630045565,27.25555556233724,|avg_pool_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|,#+0\n"
).encode()
ARCHS = [
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|avg_pool_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|",
]
MIRROR_200EP = (
    "index,arch_str,cifar10_test,cifar100_test,v10_cifar10valid_valid,v10_cifar10valid_test,v10_cifar10_test,params_mb\n"
    f"0,{ARCHS[0]},85.86333333,52.91333329,81.98266666,81.52,85.86333333,0.129306\n"
    f"1,{ARCHS[1]},93.66,70.29333327,90.76933332,90.51333333,93.66,0.802426\n"
    f"2,{ARCHS[2]},85.74,54.86666663,81.91066666,81.84,85.74,0.559386\n"
).encode()
MIRROR_NASWOT = (
    "index,arch_str,naswot_v1_score\n"
    f"0,{ARCHS[0]},-776.4428597\n1,{ARCHS[1]},-279.3418932\n2,{ARCHS[2]},\n"
).encode()
GENOTYPE = "Genotype(normal=[('sep_conv_5x5', 0)], normal_concat=[2, 3, 4, 5], reduce=[('sep_conv_5x5', 0)], reduce_concat=[2, 3, 4, 5])"
SWAP_CSV = f'"{GENOTYPE}",85.0\n"{GENOTYPE}",85.23999786376953\n'.encode()


def fake_b_pickle() -> bytes:
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({
        "arch": [0, 1, 2], "cellstr": ARCHS, "score": [-776.44285967, -279.34189321, np.nan],
        "cifar10-valid-x-valid": [81.98266666, 90.76933332, 81.91066666],
        "cifar10-valid-ori-test": [81.52, 90.51333333, 81.84],
        "cifar10-ori-test": [85.86333333333334, 93.66000000000001, 85.74000000000001],
        "params": [0.129306, 0.802426, 0.559386],
    }, index=[10, 11, 12])  # a non-default index: rows are matched by position
    return pickle.dumps(frame, protocol=4)


def fake_tarball(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in {"cifar-10-batches-py/readme.html": b"<html/>", **members}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def public(server) -> SimpleNamespace:
    """The real manifest with its downloads served by ``server`` (pinned to the fake files' sha256)."""
    manifest = copy.deepcopy(load_manifest())
    cifar10 = {m: f"batch {m}".encode() for m in manifest["targets"][0]["md5"]}
    cifar100 = {m: f"split {m}".encode() for m in manifest["targets"][1]["md5"]}
    bodies = {
        "cifar10": fake_tarball(cifar10), "cifar100": fake_tarball(cifar100), "nats_bench_landscape": A_CSV,
        "naswot_arch_score_acc": fake_b_pickle(), "swap_darts": SWAP_CSV,
    }
    for name, body in bodies.items():
        entry = manifest["downloads"][name]
        server.routes[urlsplit(entry["url"]).path] = body
        entry["sha256"] = sha(body)
    for target, members in ((manifest["targets"][0], cifar10), (manifest["targets"][1], cifar100)):
        target["md5"] = {m: hashlib.md5(members[m]).hexdigest() for m in target["md5"]}
    for target in manifest["targets"]:
        target["rows"] = {"nds/darts_swap1000_cifar10.csv": 2}.get(target.get("path"), 3)
    tables = {t.get("path"): t for t in manifest["targets"]}
    tables["nb201/nb201_acc_200ep.csv"]["reference"]["sha256"] = sha(MIRROR_200EP)
    tables["nb201/nb201_naswot_v1_cifar10.csv"]["reference"]["sha256"] = sha(MIRROR_NASWOT)
    return SimpleNamespace(manifest=manifest, server=server, cifar10=cifar10, cifar100=cifar100)


def test_public_sources_are_downloaded_and_converted(public, tmp_path, caplog):
    root = tmp_path / "data"
    caplog.set_level("INFO", logger="eznas.fetch")
    written = fill_from_sources(root, public.manifest, source_base=public.server.base)
    assert "nb201/nb201_acc_200ep.csv" in written and "nds/darts_swap1000_cifar10.csv" in written

    for member, data in public.cifar10.items():  # the official pickles, where the loader reads them
        assert (root / "cifar10" / member).read_bytes() == data
    for member, data in public.cifar100.items():
        assert (root / "cifar100" / member).read_bytes() == data
    assert not (root / "cifar10" / "cifar-10-batches-py" / "readme.html").exists()
    assert not list((root / "sources").glob("*.tar.gz"))  # archives dropped once extracted

    table = (root / "nb201/nb201_acc_200ep.csv").read_text().splitlines()
    assert table[0] == ("index,arch_str,cifar10_test,cifar100_test,imagenet16_120_test,v10_cifar10valid_valid,"
                        "v10_cifar10valid_test,v10_cifar10_test,params_mb")
    assert table[1] == f"0,{ARCHS[0]},85.86333333,52.91333329,26.63333327,81.98266666,81.52,85.86333333,0.129306"
    # without its ImageNet16-120 column, the table is byte for byte the mirror's
    assert "nb201/nb201_acc_200ep.csv matches" in caplog.text
    assert (root / "nb201/nb201_naswot_v1_cifar10.csv").read_bytes() == MIRROR_NASWOT
    swap = (root / "nds/darts_swap1000_cifar10.csv").read_text().splitlines()
    assert swap == ["genotype,valid_acc", f'"{GENOTYPE}",85.0', f'"{GENOTYPE}",85.23999786']
    assert not [p for p in files_under(root) if p.name.endswith(".part")]

    # a second run downloads nothing and rewrites nothing
    hits = len(public.server.hits)
    mtimes = {p: p.stat().st_mtime_ns for p in files_under(root)}
    assert fill_from_sources(root, public.manifest, source_base=public.server.base) == []
    assert len(public.server.hits) == hits
    assert {p: p.stat().st_mtime_ns for p in files_under(root)} == mtimes


def test_a_source_that_does_not_line_up_is_an_error(public, tmp_path):
    a_swapped = A_CSV.replace(b"|avg_pool_3x3~0|+|nor_conv_1x1~0|", b"|avg_pool_3x3~0|+|nor_conv_3x3~0|", 1)
    entry = public.manifest["downloads"]["nats_bench_landscape"]
    public.server.routes[urlsplit(entry["url"]).path] = a_swapped
    entry["sha256"] = sha(a_swapped)
    public.manifest["targets"] = [t for t in public.manifest["targets"] if t["kind"] == "table"][:1]
    with pytest.raises(DataError, match=r"arch_score_acc.pd: row 0 has arch_str .* do not line up"):
        fill_from_sources(tmp_path / "data", public.manifest, source_base=public.server.base)
    assert not (tmp_path / "data" / "nb201").exists()


def test_unknown_source_column_names_what_it_has(public, tmp_path):
    table = next(t for t in public.manifest["targets"] if t.get("path") == "nb201/nb201_acc_200ep.csv")
    table["columns"][-1]["source"] = ["no_such_column"]
    public.manifest["targets"] = [table]
    with pytest.raises(DataError, match=r"no column for params_mb .*it has arch, cellstr, score"):
        fill_from_sources(tmp_path / "data", public.manifest, source_base=public.server.base)


def test_manual_notes_for_imagenet16_and_nats_sss(tmp_path):
    notes = manual_notes(tmp_path)
    assert len(notes) == 2 and all("no automatic download" in n for n in notes)
    assert str(tmp_path / "imagenet16-120") in notes[0] and "NATS-sss-v1_0-50262-simple.tar" in notes[1]
    (tmp_path / "imagenet16-120/ImageNet16").mkdir(parents=True)
    (tmp_path / "imagenet16-120/ImageNet16/train_data_batch_1").write_bytes(b"x")
    (tmp_path / "nats_sss").mkdir()
    assert manual_notes(tmp_path) == []


def test_an_official_nats_sss_table_converts_to_the_csv_the_space_reads(tmp_path):
    from tests.test_nats_sss import ARCHS, SIMPLE, record, write_pbz2

    folder = tmp_path / "download" / SIMPLE
    folder.mkdir(parents=True)
    write_pbz2(folder / "meta.pickle.pbz2", {"meta_archs": list(ARCHS), "total_archs": 3})
    for i, arch in enumerate(ARCHS):
        write_pbz2(folder / f"{i:06d}.pickle.pbz2", record(i, arch, 80.0 + i))
    assert fetch_main(["--data-root", str(tmp_path / "data"), "--nats-sss", str(folder)]) == 0
    space = get_space("NATSBenchSSS")
    csv = space.default_benchmark(tmp_path / "data", "cifar10")
    assert csv == tmp_path / "data" / "nats_sss" / "nats_sss.csv"
    assert space.load(csv, "cifar10") == space.load(folder, "cifar10")
    assert space.load(csv, "cifar10", "cifar10_valid") == space.load(folder, "cifar10", "cifar10-valid:x-valid")
    assert [a.accuracy for a in space.load(csv, "cifar100")] == [49.0, 50.0, 51.0]


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_failure_is_one_error_line(tmp_path):
    env = {**os.environ, "EZNAS_MIRROR": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "eznas.fetch", "--data-root", str(tmp_path / "data"), "--mirror", str(tmp_path / "nowhere")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: mirror {tmp_path / 'nowhere'} is not a folder (--mirror or $EZNAS_MIRROR)"]
    assert files_under(tmp_path / "data") == []
