"""Bundles: round trip, and every kind of bad bundle is refused with a clear error."""

from __future__ import annotations

import io
import tarfile
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from installer import BundleError, SpecError, UntrustedPlanner, build_bundle, new_manifest, open_bundle
from installer.planner.bundle import MANIFEST, PLANNER, SIGNATURE, Manifest
from installer.planner.spec import VesselShare
from seattlecore import KeyPair
from tests.support.bundles import make_bundle

PLANNER_KEYS = KeyPair.generate()
OWNER = KeyPair.generate()
GOOD = make_bundle(PLANNER_KEYS, OWNER)


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(zlib.decompress(data, 16 + zlib.MAX_WBITS))) as tar:
        out = {}
        for info in tar:
            handle = tar.extractfile(info)
            assert handle is not None
            out[info.name] = handle.read()
        return out


def repack(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(buffer.getvalue()) + compressor.flush()


def test_round_trip() -> None:
    opened = open_bundle(GOOD, trust=PLANNER_KEYS.public)
    manifest = opened.manifest
    assert manifest.planner == PLANNER_KEYS.public
    assert [v.percent for v in manifest.vessels] == [30, 50, 20]
    assert manifest.vessels[2].reserved and manifest.vessels[2].owner == PLANNER_KEYS.public
    assert manifest.bootstrap == ("127.0.0.1:9",)
    assert len(opened.digest) == 64
    assert open_bundle(GOOD).digest == opened.digest


def test_tampered_manifest_refused() -> None:
    files = members(GOOD)
    files[MANIFEST] = files[MANIFEST].replace(b'"percent":30', b'"percent":40').replace(
        b'"percent":20', b'"percent":10')
    with pytest.raises(BundleError, match="signature does not verify"):
        open_bundle(repack(files))


def test_wrong_signature_refused() -> None:
    files = members(GOOD)
    other = KeyPair.generate()
    files[SIGNATURE] = other.sign(b"seattle-installer-manifest-v1", files[MANIFEST]).hex().encode()
    with pytest.raises(BundleError, match="signature does not verify"):
        open_bundle(repack(files))


def test_swapped_planner_key_refused() -> None:
    """Re-signing with another key and naming it in planner.publickey still fails the manifest check."""
    files = members(GOOD)
    other = KeyPair.generate()
    files[SIGNATURE] = other.sign(b"seattle-installer-manifest-v1", files[MANIFEST]).hex().encode()
    files[PLANNER] = other.public.to_text().encode()
    with pytest.raises(BundleError, match="different planner"):
        open_bundle(repack(files))


def test_signature_from_other_domain_refused() -> None:
    files = members(GOOD)
    files[SIGNATURE] = PLANNER_KEYS.sign(b"seattle-request-v1", files[MANIFEST]).hex().encode()
    with pytest.raises(BundleError, match="signature"):
        open_bundle(repack(files))


def test_untrusted_planner_refused() -> None:
    with pytest.raises(UntrustedPlanner, match="not the trusted"):
        open_bundle(GOOD, trust=OWNER.public)


@pytest.mark.parametrize("cut", [0, 1, 10, 100, len(GOOD) // 2, len(GOOD) - 9, len(GOOD) - 1],
                         ids=["0", "1", "10", "100", "half", "end-9", "end-1"])  # same ids on every worker
def test_truncated_refused(cut: int) -> None:
    with pytest.raises(BundleError):
        open_bundle(GOOD[:cut])


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_flipped_byte_refused(position: int, mask: int) -> None:
    data = bytearray(GOOD)
    data[position % len(data)] ^= mask
    try:
        opened = open_bundle(bytes(data))
    except BundleError:
        return
    # a flip in gzip/tar metadata that leaves every member intact is harmless
    assert opened.digest == open_bundle(GOOD).digest


def test_garbage_and_extra_members_refused() -> None:
    with pytest.raises(BundleError, match="gzip"):
        open_bundle(b"not a bundle at all")
    files = members(GOOD)
    with pytest.raises(BundleError, match="unexpected entry"):
        open_bundle(repack({**files, "seattle-bundle/evil.sh": b"rm -rf /"}))
    del files[SIGNATURE]
    with pytest.raises(BundleError, match="lacks"):
        open_bundle(repack(files))
    with pytest.raises(BundleError, match="larger"):
        open_bundle(b"\x1f\x8b" + bytes(300_000))


def test_trailing_data_refused() -> None:
    with pytest.raises(BundleError, match="trailing"):
        open_bundle(GOOD + b"x")


def test_build_checks_planner_and_total() -> None:
    shares = (VesselShare(percent=100, owner=OWNER.public),)
    manifest = new_manifest(PLANNER_KEYS.public, shares, ("127.0.0.1:9",), now=1.0)
    with pytest.raises(SpecError, match="different planner"):
        build_bundle(manifest, OWNER)
    with pytest.raises(SpecError, match="100 %"):
        Manifest(planner=PLANNER_KEYS.public, vessels=(VesselShare(percent=50, owner=OWNER.public),),
                 bootstrap=("h:1",), build_id="x", created=0.0)
