"""The ZenML side of the entry point: repository, partner stacks, active stack.

Everything here touches the ZenML store, so it is imported only when a
command needs it (``run.py --help`` stays fast). Stacks are registered
through the Python client, idempotently: running twice changes nothing, and
a changed YAML file updates the registered component in place. No prompt,
ever.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from collabops.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
STACKS_DIR = ROOT / "stacks"
COLLABORATION_CONFIG = ROOT / "configs" / "collaboration.yaml"
# collabops' own flavors, registered before the stacks that use them.
FLAVORS = (("components.model_deployer.CollabopsModelDeployerFlavor", "model_deployer"),)


def prepare_environment() -> None:
    """Environment defaults that must be set before ZenML is imported."""
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    os.environ.setdefault("ZENML_REPOSITORY_PATH", str(ROOT))
    os.environ.setdefault("ZENML_ENABLE_RICH_TRACEBACK", "false")
    os.environ.setdefault("ZENML_AUTO_OPEN_DASHBOARD", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


@dataclass(frozen=True)
class Collaboration:
    """``configs/collaboration.yaml``: the partners and the model they share."""

    model_name: str
    default_partner: str
    partner_stacks: dict[str, str]
    owners: dict[str, str] = field(default_factory=dict)
    exchange: dict[str, Any] = field(default_factory=dict)
    deployment: dict[str, Any] = field(default_factory=dict)

    @property
    def keys_dir(self) -> Path:
        return ROOT / str(self.exchange.get("keys_dir", "keys"))

    @classmethod
    def load(cls, path: Path = COLLABORATION_CONFIG) -> "Collaboration":
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: collaboration config not found") from None
        try:
            partners = {name: str(spec["stack"]) for name, spec in raw["partners"].items()}
            collaboration = cls(model_name=str(raw["model_name"]), default_partner=str(raw["default_partner"]),
                                partner_stacks=partners,
                                owners={name: str(spec.get("owner", name)) for name, spec in raw["partners"].items()},
                                exchange=dict(raw.get("exchange") or {}),
                                deployment=dict(raw.get("deployment") or {}))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path}: missing or malformed field {exc}") from None
        if collaboration.default_partner not in partners:
            raise ConfigError(f"{path}: default_partner '{collaboration.default_partner}' is not a partner")
        return collaboration

    def stack_of(self, partner: str) -> str:
        try:
            return self.partner_stacks[partner]
        except KeyError:
            known = ", ".join(sorted(self.partner_stacks))
            raise ConfigError(f"unknown partner '{partner}' (known partners: {known}; "
                              f"see {COLLABORATION_CONFIG.relative_to(ROOT)})") from None

    def partner_of(self, stack: str) -> Optional[str]:
        return next((p for p, s in self.partner_stacks.items() if s == stack), None)


def read_stack_file(path: Path) -> dict[str, Any]:
    """A stack in ``zenml stack export`` format, checked for the fields we use."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or "stack_name" not in data or not isinstance(data.get("components"), dict):
        raise ConfigError(f"{path}: not a stack export (needs 'stack_name' and 'components')")
    for kind, entries in data["components"].items():
        for entry in entries if isinstance(entries, list) else [entries]:
            missing = {"name", "flavor"} - set(entry or {})
            if missing:
                raise ConfigError(f"{path}: component '{kind}' lacks {', '.join(sorted(missing))}")
    return data


def ensure_repository() -> bool:
    """Initialise the ZenML repository at the project root once; True if it was created now."""
    from zenml.client import Client

    root = Path(os.environ.get("ZENML_REPOSITORY_PATH", ROOT))
    if Client.is_repository_directory(root):
        return False
    Client.initialize(root=root)
    return True


def register_stacks(stacks_dir: Path = STACKS_DIR) -> list[tuple[str, str]]:
    """Register or update every stack in ``stacks_dir``; return (stack, what happened) pairs."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    results = []
    register_flavors()
    for path in sorted(stacks_dir.glob("*.yaml")):
        data = read_stack_file(path)
        changed = False
        components: dict[StackComponentType, str] = {}
        for kind, entries in data["components"].items():
            component_type = StackComponentType(kind)
            entry = entries[0] if isinstance(entries, list) else entries
            changed |= _register_component(client, component_type, entry, path)
            components[component_type] = entry["name"]
        name = data["stack_name"]
        try:
            stack = client.get_stack(name, allow_name_prefix_match=False)
        except KeyError:
            client.create_stack(name=name, components=components)
            results.append((name, "registered"))
            continue
        current = {t: c[0].name for t, c in stack.components.items() if c}
        if current != components:
            removed = [t for t in current if t not in components]
            client.update_stack(name_id_or_prefix=stack.id, component_updates={
                **{t: [n] for t, n in components.items()}, **{t: [] for t in removed}})
            changed = True
        results.append((name, "updated" if changed else "up to date"))
    return results


def register_flavors() -> None:
    """Register collabops' flavors once; their code is read from the repository at use."""
    from zenml.client import Client
    from zenml.enums import StackComponentType
    from zenml.stack.flavor import validate_flavor_source

    client = Client()
    for source, kind in FLAVORS:
        component_type = StackComponentType(kind)
        _, flavor = validate_flavor_source(source=source, component_type=component_type)
        try:
            client.get_flavor_by_name_and_type(flavor.name, component_type)
        except KeyError:
            client.create_flavor(source=source, component_type=component_type)


def _register_component(client: Any, component_type: Any, entry: dict[str, Any], path: Path) -> bool:
    """Create the component, or update its configuration if it differs; True if anything changed."""
    name, flavor = entry["name"], entry["flavor"]
    configuration = entry.get("configuration") or {}
    try:
        existing = client.get_stack_component(component_type, name, allow_name_prefix_match=False)
    except KeyError:
        client.create_stack_component(name=name, flavor=flavor, component_type=component_type,
                                      configuration=configuration)
        return True
    if existing.flavor_name != flavor:
        raise ConfigError(
            f"{path}: a {component_type.value} named '{name}' is already registered with flavor "
            f"'{existing.flavor_name}', not '{flavor}'; rename one of them or delete it with "
            f"`zenml {component_type.value.replace('_', '-')} delete {name}`"
        )
    if existing.configuration != configuration:
        client.update_stack_component(name, component_type, configuration=configuration)
        return True
    return False


def registered_stack_names() -> list[str]:
    from zenml.client import Client

    return sorted(s.name for s in Client().list_stacks(size=1000).items)


def select_stack(collaboration: Collaboration, partner: Optional[str], stack: Optional[str]) -> tuple[str, Optional[str]]:
    """Resolve ``--partner``/``--stack`` to a registered stack and use it for this process.

    Without either flag, the active stack is used (``zenml stack set`` is
    respected). The choice is made through ``ZENML_ACTIVE_STACK_ID``, so the
    user's own active stack is never changed by a run.
    """
    from zenml.client import Client

    if partner is not None:
        partner_stack = collaboration.stack_of(partner)
        stack = stack or partner_stack
    if stack is not None:
        known = registered_stack_names()
        if stack not in known:
            raise ConfigError(f"unknown stack '{stack}' (registered stacks: {', '.join(known)}; "
                              "add one under stacks/ and run `python run.py stacks`)")
        os.environ["ZENML_ACTIVE_STACK_ID"] = str(Client().get_stack(stack, allow_name_prefix_match=False).id)
    active = Client().active_stack_model.name
    return active, partner or collaboration.partner_of(active)


def activate(stack: str) -> None:
    """Make ``stack`` the repository's active stack (as `zenml stack set` does)."""
    from zenml.client import Client

    Client().activate_stack(stack)


def experiment_tracker_name() -> Optional[str]:
    from zenml.client import Client
    from zenml.enums import StackComponentType

    trackers = Client().active_stack_model.components.get(StackComponentType.EXPERIMENT_TRACKER)
    return trackers[0].name if trackers else None


def code_revision() -> Optional[str]:
    """The git commit of the code that runs, with ``-dirty`` if it has local changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
