"""Archives: checked from their headers against the ceilings before anything is written; only what is good extracted.

A refused archive leaves nothing behind: not the target folder, not a
temporary folder. The bombs are real: a few MB of gzip that expands to
3 GiB, refused from the first header without decompressing the rest.
"""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
import time
import tracemalloc
from pathlib import Path

import pytest

from collabops.exchange.bundle import BundleError, Limits, archive, open_bundle, safe_extract
from collabops.exchange.signing import trusted_keys
from tests.conftest import data_bundle, example_data, key_pair

SMALL = Limits(max_bundle_bytes=64 * 1024, max_bundle_files=20, max_manifest_bytes=4096)


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("archives")
    private = key_pair(base / "keys", base / "home", "industry")
    return data_bundle(example_data(months=1, car_parks=2), private, base / "exchange"), base / "keys"


def _tar_gz(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], fmt: int = tarfile.PAX_FORMAT) -> Path:
    with tarfile.open(path, "w:gz", format=fmt) as tar:
        for info, content in members:
            if content is not None:
                info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return path


def _file(name: str, content: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), content


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, None


def _refused(path: Path, target: Path, check: str, fragment: str, limits: Limits | None = None) -> BundleError:
    with pytest.raises(BundleError) as refused:
        safe_extract(path, target, limits)
    assert refused.value.check == check, refused.value
    assert fragment in refused.value.detail, refused.value
    assert refused.value.bundle == str(path)
    assert not target.exists(), "a refused archive left its target folder"
    return refused.value


def zeros_bomb(path: Path, gib: int = 3) -> Path:
    """A .tar.gz of a few MB whose one member is ``gib`` GiB of zeros: gzip members of 1 MiB zeros, concatenated."""
    info = tarfile.TarInfo("data/zeros.bin")
    info.size = gib * 1024 ** 3
    mib_of_zeros = gzip.compress(bytes(1024 ** 2), compresslevel=9)
    with open(path, "wb") as out:
        out.write(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT)))
        for _ in range(gib * 1024):
            out.write(mib_of_zeros)
        out.write(gzip.compress(bytes(2 * tarfile.BLOCKSIZE)))
    return path


def test_a_good_archive_extracts_and_verifies_naming_the_archive(signed, tmp_path):
    bundle, keys = signed
    packed = archive(bundle, tmp_path / "bundle.tar.gz")
    with open_bundle(packed, trusted_keys(keys), kind="data") as opened:
        assert opened.name == packed
        assert sorted(p.relative_to(opened.root).as_posix() for p in opened.root.rglob("*") if p.is_file()) == \
            sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())


def test_an_archive_of_the_folder_itself_with_dot_entries_is_good(signed, tmp_path):
    """``tar -C bundle .`` and ZenML's folder artifacts name members ``./...``: still plain files in the folder."""
    bundle, keys = signed
    packed = Path(shutil.make_archive(str(tmp_path / "dotted"), "gztar", root_dir=bundle))
    with tarfile.open(packed) as tar:
        assert "." in tar.getnames()
    with open_bundle(packed, trusted_keys(keys), kind="data") as opened:
        assert opened.signer == "industry"


def test_a_15_mb_archive_expanding_to_3_gib_is_refused_from_its_first_header(tmp_path):
    bomb = zeros_bomb(tmp_path / "bomb.tar.gz")
    assert bomb.stat().st_size < 15 * 1024 ** 2
    tracemalloc.start()
    started = time.perf_counter()
    _refused(bomb, tmp_path / "target", "size limits", "the archive's members hold more than 2147483648 bytes "
                                                       "(exchange.max_bundle_bytes; at member 'data/zeros.bin', "
                                                       "3221225472 bytes)")
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 8 * 1024 ** 2, (elapsed, peak)


def test_the_bytes_of_all_members_together_are_held_to_the_ceiling(tmp_path):
    packed = _tar_gz(tmp_path / "many.tar.gz", [_file(f"part-{i}.bin", bytes(20_000)) for i in range(5)])
    _refused(packed, tmp_path / "target", "size limits", "at member 'part-3.bin', 20000 bytes", SMALL)


def test_more_members_than_the_ceiling_are_refused(tmp_path):
    packed = _tar_gz(tmp_path / "crowd.tar.gz", [_file(f"f{i}.txt") for i in range(25)])
    _refused(packed, tmp_path / "target", "size limits", "the archive has more than 20 members "
                                                         "(exchange.max_bundle_files)", SMALL)


def test_a_manifest_member_over_its_ceiling_is_refused_before_extraction(tmp_path):
    packed = _tar_gz(tmp_path / "fat.tar.gz", [_file("manifest.json", b" " * 5000)])
    _refused(packed, tmp_path / "target", "size limits", "manifest.json has 5000 bytes, more than 4096 "
                                                         "(exchange.max_manifest_bytes)", SMALL)


def test_a_header_record_of_megabytes_is_refused_before_it_is_read(tmp_path):
    """A GNU long name of 2 MiB: tarfile would read it whole into memory; the stream refuses the read."""
    packed = _tar_gz(tmp_path / "longname.tar.gz", [_file("a" * (2 * 1024 ** 2))], fmt=tarfile.GNU_FORMAT)
    _refused(packed, tmp_path / "target", "size limits", "the archive has a header record or block of")


@pytest.mark.parametrize("member, fragment", [
    (_file("../../escaped.txt"), "member '../../escaped.txt' contains '..'"),
    (_file("data/../../escaped.txt"), "contains '..'"),
    (_file("/etc/cron.d/job"), "member '/etc/cron.d/job' is an absolute or non-POSIX path"),
    (_file("C:/Windows/win.ini"), "is an absolute or non-POSIX path"),
    (_file("data\\..\\x"), "is an absolute or non-POSIX path"),
    (_special("model.skops", tarfile.SYMTYPE, "/etc/passwd"),
     "member 'model.skops' is a link or special file (a symbolic link to '/etc/passwd')"),
    (_special("profile.json", tarfile.LNKTYPE, "manifest.json"), "(a hard link to 'manifest.json')"),
    (_special("tty", tarfile.CHRTYPE), "(a device)"),
    (_special("disk", tarfile.BLKTYPE), "(a device)"),
    (_special("pipe", tarfile.FIFOTYPE), "(a FIFO)"),
])
def test_members_that_are_not_plain_files_inside_the_target_are_refused(tmp_path, member, fragment):
    packed = _tar_gz(tmp_path / "evil.tar.gz", [_file("profile.json"), member])
    _refused(packed, tmp_path / "deep" / "target", "archive member paths", fragment)
    assert not list(tmp_path.rglob("escaped.txt"))


@pytest.mark.parametrize("members, fragment", [
    ([_file("profile.json", b"first"), _file("profile.json", b"second")], "member 'profile.json' appears twice"),
    ([_file("data", b"a file"), _file("data/x.parquet")], "member 'data/x.parquet' appears twice, or as both a "
                                                          "file and a folder"),
    ([_file("data/x.parquet"), _file("data")], "member 'data' appears twice, or as both a file and a folder"),
])
def test_a_path_that_appears_twice_is_refused_not_overwritten(tmp_path, members, fragment):
    _refused(_tar_gz(tmp_path / "twice.tar.gz", members), tmp_path / "target", "archive member paths", fragment)


@pytest.mark.parametrize("content, fragment", [
    (b"not gzip at all", "not a readable .tar.gz"),
    (gzip.compress(b"gzip, but no tar inside" * 40), "not a readable .tar.gz"),
    (b"", "not a readable .tar.gz"),
])
def test_an_unreadable_archive_is_refused(tmp_path, content, fragment):
    path = tmp_path / "broken.tar.gz"
    path.write_bytes(content)
    _refused(path, tmp_path / "target", "archive", fragment)


def test_a_truncated_archive_is_refused_and_leaves_nothing(tmp_path):
    whole = _tar_gz(tmp_path / "whole.tar.gz", [_file("a.bin", bytes(range(256)) * 400), _file("b.bin", b"b")])
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    _refused(cut, tmp_path / "target", "archive", "not a readable .tar.gz")


def test_extraction_counts_the_bytes_it_writes_and_stops_at_a_member_that_gives_more_than_its_header(
        tmp_path, monkeypatch):
    """A header can lie: the writer stops at the member's size (and the ceiling), and nothing is left."""
    packed = _tar_gz(tmp_path / "liar.tar.gz", [_file("profile.json", b"{}"), _file("data.bin", bytes(1000))])
    real = tarfile.TarFile.extractfile

    def generous(self, member):
        source = real(self, member)
        return io.BufferedReader(io.BytesIO(source.read() + bytes(10 ** 6))) if member.name == "data.bin" else source

    monkeypatch.setattr(tarfile.TarFile, "extractfile", generous)
    _refused(packed, tmp_path / "target", "size limits", "member 'data.bin' wrote more than its header said")


def test_a_refused_archive_leaves_no_temporary_folder(signed, tmp_path, monkeypatch):
    import tempfile

    _, keys = signed
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    bomb = zeros_bomb(tmp_path / "bomb.tar.gz", gib=3)
    with pytest.raises(BundleError, match="check 'size limits' failed"), open_bundle(bomb, trusted_keys(keys)):
        pass
    evil = _tar_gz(tmp_path / "evil.tar.gz", [_file("manifest.json", b"{}"), _file("../x")])
    with pytest.raises(BundleError, match="check 'archive member paths' failed"), open_bundle(evil, trusted_keys(keys)):
        pass
    assert list(temp.iterdir()) == []


@pytest.mark.parametrize("signature", [None, b"\0" * 64])
def test_an_archive_no_trusted_partner_signed_is_refused_before_its_payload_is_written(tmp_path, monkeypatch,
                                                                                         signature):
    """Under every ceiling, but unsigned (or signed by no trusted key): only the manifest pair is ever written."""
    import os

    members = [_file("manifest.json", b'{"kind": "model"}'), _file("payload.bin", b"\0" * 5_000_000)]
    if signature is not None:
        members.insert(1, _file("manifest.sig", signature))
    path = _tar_gz(tmp_path / "unsigned.tar.gz", members)
    keys = tmp_path / "keys"
    key_pair(keys, tmp_path / "home", "university")
    real_open = os.open

    def no_payload(name, *args, **kwargs):
        assert not str(name).endswith("payload.bin"), "the payload was written before the signature was checked"
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_payload)
    target = tmp_path / "target"
    with pytest.raises(BundleError) as refused:
        safe_extract(path, target, keys=trusted_keys(keys))
    assert refused.value.check == "signature" and not target.exists()
    expected = "manifest.sig is missing" if signature is None else "does not verify manifest.json with any trusted key"
    assert expected in refused.value.detail
