"""``run.py keys init``: the private key stays outside the repository, refusals write nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import assert_refused, write_project


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A project inside a folder that looks like a checkout (it holds run.py): the repository root keys must avoid."""
    root = tmp_path / "checkout"
    root.mkdir()
    (root / "run.py").write_text("# the repository root marker\n")
    return write_project(root / "configs", keys_dir=root / "keys")


def test_a_private_key_inside_the_repository_is_refused_and_nothing_is_written(cli, repository):
    root = repository.parent.parent
    inside = root / "university.key"
    result = cli("keys", "init", "--partner", "university", "--private-key", inside, "--project", repository)
    assert_refused(result, f"{inside}: a private key must live outside the repository ({root})")
    assert not inside.exists() and list((root / "keys").iterdir()) == []


def test_an_unknown_partner_gets_no_key(cli, repository, tmp_path):
    result = cli("keys", "init", "--partner", "hospital", "--project", repository,
                 env={"XDG_CONFIG_HOME": str(tmp_path / "home")})
    assert_refused(result, "unknown partner 'hospital'", "industry, university")
    assert not (tmp_path / "home").exists() and list((repository.parent.parent / "keys").iterdir()) == []


def test_keys_init_writes_a_private_key_0600_outside_and_a_public_key_inside(cli, repository, tmp_path):
    home = tmp_path / "home"
    result = cli("keys", "init", "--partner", "university", "--project", repository, env={"XDG_CONFIG_HOME": str(home)})
    assert result.code == 0, result
    private = home / "collabops" / "keys" / "university.key"
    public = repository.parent.parent / "keys" / "university.pub"
    assert oct(private.stat().st_mode & 0o777) == "0o600"
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    assert isinstance(load_pem_private_key(private.read_bytes(), password=None), Ed25519PrivateKey)
    assert public.read_text().startswith("ed25519 ") and public.read_text().split()[-1] == "university"
    assert f"private key: {private}" in result.out and f"public key:  {public}" in result.out


def test_an_existing_key_pair_is_kept_unless_forced(cli, repository, tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "home")}
    assert cli("keys", "init", "--partner", "industry", "--project", repository, env=env).code == 0
    public = repository.parent.parent / "keys" / "industry.pub"
    first = public.read_text()
    again = cli("keys", "init", "--partner", "industry", "--project", repository, env=env)
    assert_refused(again, "already exists (use --force to replace the key pair)")
    assert public.read_text() == first
    forced = cli("keys", "init", "--partner", "industry", "--project", repository, "--force", env=env)
    assert forced.code == 0, forced
    assert public.read_text() != first


def test_keys_without_a_subcommand_is_a_usage_error(cli):
    result = cli("keys")
    assert result.code == 2 and "KEYS_COMMAND" in result.err
