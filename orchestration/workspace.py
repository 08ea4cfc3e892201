"""The workspace: the ZenML repository, the partner stacks and the active stack.

Everything here touches the ZenML store, so it is imported only when a
command needs it (``run.py --help`` stays fast). Stacks are registered
through the Python client, idempotently: running twice changes nothing, and
a changed YAML file updates the registered component in place. No prompt,
ever.

Every command chooses its stack by one rule (:func:`choose_stack`):
``--stack``, then ``--partner`` (that partner's stack in the project), then
the active stack when the user chose one, then the stack of the partner the
command belongs to (the default partner for ``train``). ZenML's own
``default`` stack and the default partner's stack, which a fresh clone makes
active, count as no choice; ``ZENML_ACTIVE_STACK_ID`` always does. The
command says which stack it runs on and why; a run never changes the active
stack.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
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


ZENML_DEFAULT_STACK = "default"
"""The stack ZenML makes active in a new store: nobody chose it."""
ACTIVE_STACK_ENV = "ZENML_ACTIVE_STACK_ID"


@dataclass(frozen=True)
class StackChoice:
    """The stack a command runs on, the partner it runs as (None: the project gives the stack to nobody), and why."""

    stack: str
    partner: str | None
    why: str


def active_counts_as_chosen(project: ProjectSettings, active: str, from_environment: bool) -> bool:
    """Whether the active stack is the user's choice: set through ``ZENML_ACTIVE_STACK_ID``, or any stack but
    ZenML's ``default`` and the default partner's stack (which a fresh clone makes active)."""
    if from_environment:
        return True
    return active not in (ZENML_DEFAULT_STACK, project.stack_of(project.default_partner))


def choose_stack(project: ProjectSettings, partner: str | None, stack: str | None, active: str | None,
                 active_from_environment: bool = False, natural_partner: str | None = None,
                 registered: list[str] | None = None) -> StackChoice:
    """The one rule every command follows: ``--stack``, ``--partner``, the chosen active stack, the command's partner.

    ``active`` is the active stack's name (None: not known); ``natural_partner``
    the partner the command belongs to (``industry`` for deploy, None for
    train: then the project's default partner). The partner is ``partner``
    when given, else the one the project gives the stack to. Raises
    ``ConfigError`` for an unknown partner; for a stack not among
    ``registered`` (the registered stacks' names, when given); and, for a
    command that belongs to a partner, when the stack belongs to no partner
    or (without ``--partner``) to another partner. Touches no store.
    """
    source = Path(project.source).name if project.source else "the project file"
    if partner is not None:
        project.stack_of(partner)  # refuses an unknown partner, also next to --stack
    if stack is not None:
        why = "--stack" + (f", as partner {partner}" if partner else "")
    elif partner is not None:
        stack, why = project.stack_of(partner), f"--partner {partner}: its stack in {source}"
    elif active is not None and active_counts_as_chosen(project, active, active_from_environment):
        stack = active
        why = ("the active stack, from ZENML_ACTIVE_STACK_ID" if active_from_environment else
               "the active stack, chosen with `zenml stack set`")
    else:
        own = natural_partner or project.default_partner
        stack = project.stack_of(own)
        unchosen = "" if active is None else (
            f"; the active stack '{active}' is " + ("ZenML's default" if active == ZENML_DEFAULT_STACK
                                                    else "the one a fresh clone starts with") + ", not a choice")
        why = f"the {own} partner's stack in {source}: no --stack or --partner{unchosen}"
    if registered is not None and stack not in registered:
        raise ConfigError(f"unknown stack '{stack}' (registered stacks: {', '.join(registered)}; "
                          "add one under stacks/ and run `python run.py stacks`)")
    runs_as = partner or project.partner_of(stack)
    if natural_partner is not None and runs_as is None:
        raise ConfigError(f"stack '{stack}' belongs to no partner; say which with --partner (`--stack {stack} "
                          f"--partner {natural_partner}` runs on it as the {natural_partner} partner; stack from "
                          f"{why}; partners in {source}: {', '.join(sorted(project.partners))})")
    if natural_partner is not None and partner is None and runs_as != natural_partner:
        own_stack = project.stack_of(natural_partner)
        raise ConfigError(f"this command is the {natural_partner} partner's, but stack '{stack}' ({why}) is the "
                          f"{runs_as} partner's in {source}; run it with --partner {natural_partner} (its stack "
                          f"'{own_stack}'), or with --stack {stack} --partner {natural_partner}")
    return StackChoice(stack, runs_as, why)


def choose(project: ProjectSettings, partner: str | None, stack: str | None,
           natural_partner: str | None = None) -> StackChoice:
    """:func:`choose_stack` on the store: reads the active stack, checks the chosen one is registered, and uses it
    for this process (through ``ZENML_ACTIVE_STACK_ID``, so the user's own active stack never changes)."""
    from zenml.client import Client

    from_environment = bool(os.environ.get(ACTIVE_STACK_ENV))
    active = None if stack is not None or partner is not None else Client().active_stack_model.name
    choice = choose_stack(project, partner, stack, active, from_environment, natural_partner,
                          registered=registered_stack_names())
    os.environ[ACTIVE_STACK_ENV] = str(Client().get_stack(choice.stack, allow_name_prefix_match=False).id)
    return choice


def select_stack(project: ProjectSettings, partner: str | None, stack: str | None,
                 natural_partner: str | None = None) -> tuple[str, str | None]:
    """:func:`choose` for callers that need only (stack, partner)."""
    choice = choose(project, partner, stack, natural_partner)
    return choice.stack, choice.partner


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
    """Set the repository up, then choose the stack this command runs on (:func:`choose_stack`); returns (stack,
    partner) and prints which stack and why.

    ``natural_partner`` is the partner a command belongs to (``industry`` for
    export-data): its stack is the last resort, and a stack of no partner or
    (without ``--partner``) of another partner is refused.
    """
    if partner is not None:
        project.stack_of(partner)  # an unknown partner is refused before the store is touched
    for line in setup(project):
        if not line.endswith(": up to date"):
            print(line)
    choice = choose(project, partner, stack, natural_partner)
    print(f"stack '{choice.stack}' ({choice.why})")
    return choice.stack, choice.partner


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
