"""Fill the data root: copy a local mirror, or download and convert the public sources.

    eznas fetch [--data-root DIR] [--mirror DIR]        # or: python -m eznas.fetch ...
    python -m eznas.fetch --nats-sss NATS-sss-v1_0-50262-simple/   # a NATS-Bench-SSS table you downloaded

What goes where is in the manifest ``eznas/data_sources.json``: every mirror file with its sha256, and
every public source (URL pinned by sha256) with the target it becomes under the data root. Each file is
written atomically (a temp file beside it, then ``os.replace``) and only after its checksum is verified;
a file already present with the right content is left alone, so a second run copies and downloads
nothing. Raw downloads are kept in ``<root>/sources/`` (the CIFAR tarballs are deleted once extracted).

``$EZNAS_SOURCE_BASE`` (e.g. ``http://127.0.0.1:8000``) replaces the scheme and host of every source URL,
for a private mirror of the public files or for tests.

The modules: ``manifest`` (the manifest and the data it cannot fetch), ``downloads`` (checksums and the
sha256-pinned downloads), ``mirror`` (the copy from a local mirror), ``convert`` (the public sources turned
into the data root's files), ``safe_pickle`` (reading a pandas pickle without running it first) and ``cli``
(the command). Every module logs as ``eznas.fetch``, the command's one logger.
"""
