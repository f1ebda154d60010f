"""pytest plugin: check a third-party target inside the user's own test suite.

Installed with the package (entry point ``pytest11``: ``relpos``); inert unless
``--relpos-target`` is given::

    pytest --relpos-target mypkg.attention:relative_attention --relpos-encoding shaw \
           [--relpos-profile hf-bert-relative-key] [--relpos-adapter mypkg.adapt:call] \
           [--relpos-backend torch] [--relpos-budget ci] [--junitxml report.xml] \
           [--relpos-allow NAME[=VALUES]] [--relpos-exclude NAME[=VALUES]]
           [--relpos-device cuda]

adds one test item per (property, dtype), named ``relpos[<property>-<dtype>]``, next to the
suite's own tests. A failing item's report is the checker's (the worst error, the bound, the
smallest failing input and its repro); the first failing item also carries the diagnosis.
``--junitxml`` records the items like any others.
"""

from __future__ import annotations

from typing import Any

import pytest

_OPTIONS = (
    ("target", "MODULE:FUNCTION", "check this function against the spec"),
    ("encoding", "NAME", "the encoding the target computes (shaw, xl, ...)"),
    ("profile", "NAME", "its convention profile (relpos profiles lists them)"),
    ("adapter", "MODULE:FUNCTION", "adapter(target, q, k, v, **arguments) for its signature"),
    ("backend", "NAME", "torch or jax (default: guessed from the target's module)"),
    ("budget", "NAME", "Hypothesis profile: dev, ci or thorough"),
    ("device", "DEVICE", "the target's tensors on cpu, cuda or cuda:N (default cpu)"),
    (
        "html",
        "FILE",
        "write the checks as one self-contained HTML page, with pictures of each failure "
        "(needs matplotlib: the report extra)",
    ),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("relpos", "relpos-conformance: check a third-party target")
    for name, metavar, text in _OPTIONS:
        group.addoption(f"--relpos-{name}", dest=f"relpos_{name}", metavar=metavar, help=text)
    from relpos.equivalence.adjustments import KINDS, help_text

    for kind in KINDS:
        group.addoption(
            f"--relpos-{kind}",
            dest=f"relpos_{kind}",
            action="append",
            default=[],
            metavar="NAME[=VALUES]",
            help=help_text(kind),
        )


class RelposItem(pytest.Item):
    """One property in one dtype on the target."""

    def __init__(self, *, target: Any, prop: str, dtype: str, budget: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.target, self.prop, self.dtype, self.budget = target, prop, dtype, budget
        self.add_marker(pytest.mark.relpos)

    def runtest(self) -> None:
        from relpos.equivalence.report import result_row
        from relpos.equivalence.runner import FAILED, run_property

        result = run_property(self.prop, self.target, self.dtype, profile=self.budget)
        # the whole result travels with the report (from pytest-xdist's workers too), for
        # --relpos-html
        self.user_properties.append((_RESULT, result_row(result)))
        self.user_properties.append(("worst_ratio", result.worst_ratio))
        self.user_properties.append(("examples", result.examples))
        if result.status == "skip":
            pytest.skip(result.message)
        if result.status in FAILED:
            raise RelposFailure(result, self.target, self._diagnose_once(result))

    def _diagnose_once(self, result: Any) -> str:
        """The diagnosis, made by the first failing item of this process only (and carried
        with its report, for --relpos-html); a target that hung or crashed gets none."""
        from relpos.equivalence.targets import diagnosis_text

        if result.status in ("timeout", "crash"):  # diagnosing would hang or crash again
            return diagnosis_text(self.target, [result])
        state = self.config.stash.setdefault(_DIAGNOSED, [])
        if state:
            return "(diagnosis: see the first failing relpos item)"
        state.append(True)
        text = diagnosis_text(self.target, [result])
        self.user_properties.append((_DIAGNOSIS, text))
        return text

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, RelposFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int | None, str]:
        return (f"relpos:{self.target.target_path}", None, self.name)


_DIAGNOSED = pytest.StashKey[list]()
#: The user properties that carry a check's result (its JSON row), and the diagnosis.
_RESULT = "relpos_result"
_DIAGNOSIS = "relpos_diagnosis"


class RelposFailure(AssertionError):
    def __init__(self, result: Any, target: Any, diagnosis: str) -> None:
        super().__init__(
            f"{target.target_path} under profile {target.profile.label}: {result.property} "
            f"{result.dtype} {result.status}\n{result.message}\n\n{diagnosis}"
        )


def _target(config: pytest.Config) -> Any:
    """The target the options name."""
    from relpos.equivalence.targets import make_target
    from relpos.spec import ArgumentError

    encoding = config.getoption("relpos_encoding")
    if not encoding:
        raise pytest.UsageError("--relpos-target needs --relpos-encoding")
    try:
        return make_target(
            config.getoption("relpos_target"),
            encoding=encoding,
            profile=config.getoption("relpos_profile"),
            adapter=config.getoption("relpos_adapter"),
            backend=config.getoption("relpos_backend"),
            allow=config.getoption("relpos_allow"),
            exclude=config.getoption("relpos_exclude"),
        )
    except ArgumentError as exc:
        raise pytest.UsageError(f"relpos: {exc}") from exc


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if not config.getoption("relpos_target"):
        return
    from relpos.equivalence.profiles import active_profile
    from relpos.equivalence.properties import PROPERTIES
    from relpos.equivalence.targets import TARGET_PROPERTIES

    target = _target(config)
    _use_device(config.getoption("relpos_device"), target.backend)
    budget = config.getoption("relpos_budget") or active_profile()
    for prop in TARGET_PROPERTIES:
        for dtype in PROPERTIES[prop].dtypes:
            items.append(
                RelposItem.from_parent(
                    session,
                    name=f"relpos[{prop}-{dtype}]",
                    target=target,
                    prop=prop,
                    dtype=dtype,
                    budget=budget,
                )
            )


def _use_device(name: str | None, backend: str) -> None:
    """Put the target's tensors on device ``name``, in this process and in pytest-xdist's
    workers (through the environment), or refuse a device its backend cannot reach."""
    if not name:
        return
    from relpos.equivalence.backends import use_device

    try:
        problems = use_device(name, (backend,))
    except ValueError as exc:
        raise pytest.UsageError(f"relpos: --relpos-device: {exc}") from exc
    if problems:
        raise pytest.UsageError(f"relpos: --relpos-device {name}: {backend}: {problems[backend]}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "relpos: a conformance check added by --relpos-target")
    html = config.getoption("relpos_html")
    if html:
        if not config.getoption("relpos_target"):
            raise pytest.UsageError("relpos: --relpos-html needs --relpos-target")
        from relpos.equivalence.pictures import require_matplotlib

        try:
            require_matplotlib("--relpos-html")
        except ImportError as exc:
            raise pytest.UsageError(f"relpos: {exc}") from exc
        config.pluginmanager.register(HtmlReport(config, html), "relpos-html")
    if config.getoption("relpos_target"):
        import os

        from relpos.equivalence.profiles import run_seed

        # pytest-xdist's workers inherit the environment: every one draws from this seed,
        # which the header reports, and RELPOS_SEED replays the run.
        os.environ.setdefault("RELPOS_SEED", str(run_seed()))


def pytest_report_header(config: pytest.Config) -> list[str]:
    if not config.getoption("relpos_target"):
        return []
    from relpos.equivalence.profiles import run_seed

    seed = run_seed()
    return [f"relpos: seed {seed} (RELPOS_SEED={seed} replays this run's draws)"]


class HtmlReport:
    """Keeps each check's result and writes the page at the end of the session, in the
    process that writes it: the only one, or pytest-xdist's controller, which receives every
    worker's reports (the result travels as a user property)."""

    def __init__(self, config: pytest.Config, path: str) -> None:
        self.config, self.path = config, path
        self.rows: list[dict[str, Any]] = []
        self.diagnosis = ""

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for name, value in report.user_properties:
            if name == _RESULT:
                self.rows.append(value)
            elif name == _DIAGNOSIS and not self.diagnosis:
                self.diagnosis = value

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput"):  # an xdist worker: the controller writes
            return
        from relpos.equivalence.html_report import write_html
        from relpos.equivalence.profiles import active_profile, run_seed
        from relpos.equivalence.report import result_from_row
        from relpos.equivalence.runner import FAILED
        from relpos.equivalence.targets import diagnosis_text

        results = [result_from_row(row) for row in self.rows]
        target = _target(self.config)
        bad = [r for r in results if r.status in FAILED]
        # the items' own diagnosis when one was made; else why there is none (cheap then)
        diagnosis = self.diagnosis or (diagnosis_text(target, bad) if bad else "")
        write_html(
            self.path,
            results,
            lambda r: target,
            budget=self.config.getoption("relpos_budget") or active_profile(),
            seed=run_seed(),
            subject=f"{target.target_path} as {target.encoding} under profile "
            f"{target.profile.label}",
            diagnosis=diagnosis,
        )
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"relpos: HTML report written to {self.path}")
