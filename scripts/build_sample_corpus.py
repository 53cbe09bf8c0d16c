"""Rebuild the bundled sample corpus (longattn_assets/data/sample/) from Debian packages.

Run on Debian 12 (bookworm) with apt access; nothing is installed: each package is fetched
with ``apt-get download PKG=VERSION`` and unpacked with ``dpkg-deb -x`` into a work folder.
The packages and versions are pinned in PACKAGES below; a newer point release of the archive
may drop a pinned version, and ``--any-version`` then takes the archive's current one (the
MANIFEST records the version used). Output bytes are deterministic for the same sources and
the same zstandard/pyarrow versions: gzip headers carry no name and no time.

    python scripts/build_sample_corpus.py [--workdir DIR] [--out DIR] [--any-version]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

PACKAGES: dict[str, str] = {
    "pari-doc": "2.15.2-1",
    "texlive-latex-base-doc": "2022.20230122-3",
    "debian-reference-en": "2.100",
    "binutils-doc": "2.40-2",
    "latex2rtf-doc": "2.3.18a-3",
    "doc-debian": "11.3+nmu1",
    "libpython3.11-stdlib": "3.11.2-6+deb12u9",
}

GPL2 = "GPL-2.0-or-later"
LPPL = "LPPL-1.3c-or-later"
GFDL = "GFDL-1.3-or-later"
PSF = "PSF-2.0"
TEXLIVE = "/usr/share/doc/texlive-doc/latex"
STDLIB = "/usr/lib/python3.11"


@dataclass(frozen=True)
class Doc:
    id: str
    package: str
    path: str  # inside the package; a .gz path is decompressed
    license: str


@dataclass(frozen=True)
class SampleFile:
    relpath: str  # under the output folder: <category>/<name>.<format>
    text_field: str  # "content" (LongAttn format) or "text" (HF/datatrove format)
    docs: tuple[Doc, ...]


def _pari(name: str) -> Doc:
    return Doc(f"arxiv/pari-{name}", "pari-doc", f"/usr/share/pari/doc/{name}.tex", GPL2)


def _latex(doc_id: str, path: str, license: str = LPPL) -> Doc:
    return Doc(f"arxiv/{doc_id}", "texlive-latex-base-doc", f"{TEXLIVE}/{path}", license)


def _binutils(name: str, license: str) -> Doc:
    return Doc(f"book/gnu-{name}-manual", "binutils-doc", f"/usr/share/info/{name}.info.gz", license)


def _stdlib(module: str) -> Doc:
    name = module.removesuffix(".py").replace("/", ".")
    return Doc(f"code/python-{name}", "libpython3.11-stdlib", f"{STDLIB}/{module}", PSF)


SAMPLE_FILES: tuple[SampleFile, ...] = (
    SampleFile(
        "arxiv/pari-doc.jsonl.zst",
        "content",
        tuple(
            _pari(name)
            for name in (
                "tutorial", "tutorial-mf", "usersch1", "usersch2", "usersch4",
                "usersch6", "usersch7", "develop", "appd",
            )
        ),
    ),
    SampleFile(
        "arxiv/texlive-latex-base-doc.parquet",
        "text",
        (
            _latex("amsmath-user-guide", "amsmath/amsldoc.tex.gz"),
            _latex("latex-font-selection", "base/fntguide.tex.gz"),
            _latex("latex-class-guide", "base/clsguide.tex.gz"),
            _latex("latex-user-guide", "base/usrguide.tex.gz"),
            _latex("latex-graphics-guide", "graphics/grfguide.tex.gz"),
            _latex("psnfss-fonts-guide", "psnfss/psnfss2e.tex.gz", "LPPL-1.2-or-later"),
            _latex("hyperref-manual", "hyperref/hyperref-doc.tex.gz", "GFDL-1.1-or-later"),
            _latex("latex-news-01", "base/ltnews01.tex.gz"),
            _latex("latex-news-02", "base/ltnews02.tex.gz"),
        ),
    ),
    SampleFile(
        "book/debian-and-gnu-manuals.jsonl.gz",
        "text",
        (
            Doc(
                "book/debian-reference",
                "debian-reference-en",
                "/usr/share/debian-reference/debian-reference.en.txt.gz",
                GPL2,
            ),
            _binutils("binutils", GFDL),
            _binutils("gprof", GFDL),
            _binutils("ctf-spec", "GPL-3.0-or-later"),
            Doc(
                "book/latex2rtf-manual",
                "latex2rtf-doc",
                "/usr/share/doc/latex2rtf-doc/latex2rtf.txt.gz",
                "GNU manual permission notice (verbatim copying; see its Copying section)",
            ),
            Doc(
                "book/debian-social-contract",
                "doc-debian",
                "/usr/share/doc/debian/social-contract.txt.gz",
                "OPL-1.0",
            ),
            Doc(
                "book/debian-bug-log-access",
                "doc-debian",
                "/usr/share/doc/debian/bug-log-access.txt",
                "GPL-1.0-or-later",
            ),
        ),
    ),
    SampleFile(
        "code/python3.11-stdlib.jsonl.zst",
        "content",
        tuple(
            _stdlib(module)
            for module in (
                "_pydecimal.py", "pydoc.py", "doctest.py", "tarfile.py", "difflib.py",
                "mailbox.py", "asyncio/base_events.py", "pdb.py", "dataclasses.py",
                "statistics.py", "smtplib.py", "shutil.py", "imaplib.py", "ftplib.py",
                "bdb.py", "pstats.py", "uuid.py", "fractions.py", "plistlib.py",
                "colorsys.py", "nturl2path.py",
            )
        ),
    ),
)


def fetch_packages(workdir: Path, any_version: bool) -> dict[str, str]:
    """Download and unpack each package; returns the version actually used per package."""
    debs, roots = workdir / "debs", workdir / "root"
    debs.mkdir(parents=True, exist_ok=True)
    roots.mkdir(parents=True, exist_ok=True)
    versions: dict[str, str] = {}
    for package, pinned in PACKAGES.items():
        spec = package if any_version else f"{package}={pinned}"
        subprocess.run(["apt-get", "download", spec], cwd=debs, check=True)
        deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
        versions[package] = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
        ).stdout.strip()
        subprocess.run(["dpkg-deb", "-x", str(deb), str(roots / package)], check=True)
    return versions


def read_doc(roots: Path, doc: Doc) -> str:
    data = (roots / doc.package / doc.path.lstrip("/")).read_bytes()
    if doc.path.endswith(".gz"):
        data = gzip.decompress(data)
    # Strict: a source that is not valid UTF-8 must stop the build, not be patched over.
    return data.decode("utf-8", errors="strict")


def _rows(sample: SampleFile, texts: dict[str, str], versions: dict[str, str]) -> list[dict]:
    return [
        {
            "id": doc.id,
            sample.text_field: texts[doc.id],
            "source": f"debian:{doc.package}={versions[doc.package]}:{doc.path}",
            "license": doc.license,
        }
        for doc in sample.docs
    ]


def encode_sample(sample: SampleFile, rows: list[dict]) -> bytes:
    if sample.relpath.endswith(".parquet"):
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), sink, compression="zstd", compression_level=19)
        return sink.getvalue()
    jsonl = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    if sample.relpath.endswith(".jsonl.zst"):
        return zstandard.ZstdCompressor(level=19).compress(jsonl)
    if sample.relpath.endswith(".jsonl.gz"):
        return gzip.compress(jsonl, compresslevel=9, mtime=0)
    raise ValueError(f"unknown sample format: {sample.relpath}")


def manifest(texts: dict[str, str], versions: dict[str, str]) -> str:
    lines = [
        "# Sample corpus",
        "",
        "Real text for the demo and the tests, one folder per default category. Every document",
        "is one whole file taken unchanged (only gunzipped) from a Debian 12 package; the id is",
        "`<category>/<name>`. Files use the formats the reader accepts, and both text fields:",
        "`content` (LongAttn) and `text` (Hugging Face / datatrove).",
        "",
        "Rebuild (Debian 12 with apt access; downloads the packages below with",
        "`apt-get download`, unpacks them with `dpkg-deb -x`, installs nothing):",
        "",
        "    python scripts/build_sample_corpus.py",
        "",
    ]
    for sample in SAMPLE_FILES:
        lines += [
            f"## {sample.relpath} (text field `{sample.text_field}`)",
            "",
            "| id | package | path in package | license | characters |",
            "| --- | --- | --- | --- | ---: |",
        ]
        lines += [
            f"| `{d.id}` | {d.package} {versions[d.package]} | {d.path} | {d.license} "
            f"| {len(texts[d.id]):,} |"
            for d in sample.docs
        ]
        lines.append("")
    lines += [
        "Licenses as stated in each package's `/usr/share/doc/<package>/copyright`;",
        "libpython3.11-stdlib's copyright file is libpython3.11-minimal's (a symlink).",
        "",
    ]
    return "\n".join(lines)


def build(out: Path, workdir: Path, any_version: bool) -> None:
    versions = fetch_packages(workdir, any_version)
    roots = workdir / "root"
    texts = {doc.id: read_doc(roots, doc) for s in SAMPLE_FILES for doc in s.docs}
    for sample in SAMPLE_FILES:
        target = out / sample.relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(encode_sample(sample, _rows(sample, texts, versions)))
    (out / "MANIFEST.md").write_text(manifest(texts, versions), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).resolve().parents[1] / "longattn_assets" / "data" / "sample"
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--workdir", type=Path, help="where .deb files are kept (default: temp)")
    parser.add_argument("--any-version", action="store_true", help="take the archive's versions")
    args = parser.parse_args()
    if args.workdir is not None:
        build(args.out, args.workdir, args.any_version)
        return
    with tempfile.TemporaryDirectory() as tmp:
        build(args.out, Path(tmp), args.any_version)


if __name__ == "__main__":
    main()
