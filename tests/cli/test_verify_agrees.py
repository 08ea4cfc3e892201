"""``verify`` runs every check the receiving command runs: it refuses what ``import-model`` refuses, word for word.

``verify`` touches no store; ``import-model`` is called through the ``cli``
fixture too, so both refusals are decided before the ZenML layer. A good
model bundle verifies, and ``verify`` says the model loaded and re-predicted.
"""

from __future__ import annotations

import json

import pytest

from tests.cli.test_import_refusals import BROKEN, Exchange, build_exchange, copy_of, reseal
from tests.conftest import assert_refused


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Exchange:
    return build_exchange(tmp_path_factory.mktemp("verify-agrees"))


def _error(result) -> str:
    return result.err.strip().removeprefix("error: ")


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_verify_refuses_every_model_bundle_import_model_refuses_with_the_same_message(cli, exchange, tmp_path, name):
    damage, check, fragments = BROKEN[name]
    root = copy_of(exchange.model, tmp_path)
    damage(root)
    reseal(root, exchange.university_key)
    verified = cli("verify", root, "--project", exchange.project)
    assert_refused(verified, f"check '{check}' failed", *fragments)
    assert _error(verified) == _error(cli("import-model", root, "--project", exchange.project))


def test_verify_refuses_a_bundle_signed_with_the_receivers_own_key_as_import_model_does(cli, exchange, tmp_path):
    root = copy_of(exchange.model, tmp_path)
    reseal(root, exchange.industry_key, partner="industry",
           change=lambda manifest: manifest["producer"].update(partner="industry"))
    verified = cli("verify", root, "--project", exchange.project)
    assert_refused(verified, "signed with the key of 'industry', the receiving partner itself")
    assert _error(verified) == _error(cli("import-model", root, "--project", exchange.project))


def test_verify_as_another_partner_counts_only_that_partners_own_key_out(cli, exchange):
    """The data bundle is the industry's: verified as the university receives it, refused as the industry itself."""
    assert cli("verify", exchange.data, "--project", exchange.project).code == 0
    assert_refused(cli("verify", exchange.data, "--project", exchange.project, "--partner", "industry"),
                   "check 'signature' failed: signed with the key of 'industry', the receiving partner itself")
    assert_refused(cli("verify", exchange.data, "--project", exchange.project, "--partner", "hospital"),
                   "unknown partner 'hospital'")


def test_a_good_model_bundle_verifies_with_its_model_loaded_and_replayed(cli, exchange):
    result = cli("verify", exchange.model, "--project", exchange.project)
    assert result.code == 0, result
    manifest = json.loads((exchange.model / "manifest.json").read_text())
    assert f"verified: model bundle {manifest['bundle_id']}, signed by 'university', " \
           f"{len(manifest['files'])} file(s) checked" in result.out
    assert "model: loads with the trusted types only, and re-predicts its 500-row reference sample within 1e-09 " \
           "(largest difference 0)" in result.out
