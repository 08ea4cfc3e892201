"""The workspace: the ZenML repository, the partner stacks and the active stack.

Everything here touches the ZenML store, so it is imported only when a
command needs it (``run.py --help`` stays fast). Stacks are registered
through the Python client, idempotently: running twice changes nothing, and
a changed YAML file updates the registered component in place. No prompt,
ever.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from collabops.errors import ConfigError
from collabops.settings import ProjectSettings

ROOT = Path(__file__).resolve().parents[1]
STACKS_DIR = ROOT / "stacks"
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


def select_stack(project: ProjectSettings, partner: str | None, stack: str | None) -> tuple[str, str | None]:
    """Resolve ``--partner``/``--stack`` to a registered stack and use it for this process.

    Without either flag, the active stack is used (``zenml stack set`` is
    respected). The choice is made through ``ZENML_ACTIVE_STACK_ID``, so the
    user's own active stack is never changed by a run.
    """
    from zenml.client import Client

    if partner is not None:
        partner_stack = project.stack_of(partner)
        stack = stack or partner_stack
    if stack is not None:
        known = registered_stack_names()
        if stack not in known:
            raise ConfigError(f"unknown stack '{stack}' (registered stacks: {', '.join(known)}; "
                              "add one under stacks/ and run `python run.py stacks`)")
        os.environ["ZENML_ACTIVE_STACK_ID"] = str(Client().get_stack(stack, allow_name_prefix_match=False).id)
    active = Client().active_stack_model.name
    return active, partner or project.partner_of(active)


def activate(stack: str) -> None:
    """Make ``stack`` the repository's active stack (as `zenml stack set` does)."""
    from zenml.client import Client

    Client().activate_stack(stack)


def experiment_tracker_name() -> str | None:
    from zenml.client import Client
    from zenml.enums import StackComponentType

    trackers = Client().active_stack_model.components.get(StackComponentType.EXPERIMENT_TRACKER)
    return trackers[0].name if trackers else None


def code_revision() -> str | None:
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


def setup(project: ProjectSettings) -> list[str]:
    """Initialise the repository and register the stacks; on a fresh clone, activate the default partner's stack.

    Returns one line per stack (and one if the repository was created now),
    for the caller to print.
    """
    created = ensure_repository()
    lines = [f"stack {name}: {status}" for name, status in register_stacks()]
    if created:
        default_stack = project.stack_of(project.default_partner)
        activate(default_stack)
        lines.append(f"initialised the ZenML repository in {ROOT}; active stack: {default_stack}")
    return lines


def use_stack(project: ProjectSettings, partner: str | None, stack: str | None,
              natural_partner: str | None = None) -> tuple[str, str | None]:
    """Set the repository up, then choose the stack this command runs on; returns (stack, partner).

    ``natural_partner`` is the partner a command belongs to (``industry`` for
    export-data): used when neither ``--partner`` nor ``--stack`` is given.
    With it, a stack that belongs to no partner is refused.
    """
    if partner is not None:
        project.stack_of(partner)  # an unknown partner is refused before the store is touched
    for line in setup(project):
        if not line.endswith(": up to date"):
            print(line)
    chosen_partner = partner or (None if stack else natural_partner)
    chosen_stack, chosen_partner = select_stack(project, chosen_partner, stack)
    if natural_partner is not None and chosen_partner is None:
        raise ConfigError(f"stack '{chosen_stack}' belongs to no partner; say which with --partner")
    return chosen_stack, chosen_partner


def artifact_store_path() -> str:
    from zenml.client import Client

    return str(Client().active_stack.artifact_store.path)


def tracking_uri() -> str | None:
    """The active stack's MLflow tracking URI, if it has an experiment tracker."""
    from zenml.client import Client

    tracker = Client().active_stack.experiment_tracker
    return tracker.get_tracking_uri() if tracker is not None else None


def dashboard_hint(run_id: str | None = None) -> str:
    """Where to look at a run: the server's URL, or how to start the local dashboard."""
    from zenml.client import Client

    store = Client().zen_store
    if store.type.value == "rest":
        return f"{store.url}/runs/{run_id}" if run_id else str(store.url)
    return "zenml login --local   (then open http://127.0.0.1:8237; zenml logout --local stops it)"
