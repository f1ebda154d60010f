"""The ``relpos`` command line.

relpos spec show NAME [--latex]        the formula sheet of an encoding
relpos spec prove [--encoding NAME]    prove the spec's identities, print a table
relpos vectors export --out DIR        write the golden vectors
relpos vectors verify DIR              re-derive golden vectors, report differences
relpos check [--target M:F --encoding NAME [--profile P] [--adapter M:F]]
                                       conformance report (bundled implementations or a target)
relpos frequencies [--target M:F] [--rope-type T]
                                       a RoPE's inverse frequencies and attention factor
                                       against the spec's exact values, per scaling variant
                                       (bundled implementations or a target)
relpos rotations --target M:F --layout L
                                       cos and sin of M-RoPE or 2D axial RoPE for position
                                       ids of several axes, per layout
relpos position-ids --target M:F       multimodal position ids of prompts and generation
relpos profiles [--encoding NAME]      conventions and named library profiles
relpos bench                           benchmarks
relpos study list | run NAME [--quick] [--seeds N] [-n N] [--out DIR] | bench
                                       studies on small trained models
relpos --version                       the installed distribution's version
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _spec_show(args: argparse.Namespace) -> int:
    from relpos.spec.render import show

    sys.stdout.write(show(args.name, latex=args.latex))
    return 0


def _spec_prove(args: argparse.Namespace) -> int:
    from relpos.spec import get_encoding
    from relpos.spec.render import proof_table, prove

    chosen = None if not args.encoding else [get_encoding(n) for n in args.encoding]
    results = prove(chosen)
    sys.stdout.write(proof_table(results, verbose=args.verbose))
    failed = [f"{enc}: {name}" for enc, name, proof in results if not proof.proved]
    if failed:
        sys.stdout.write(f"{len(failed)} identities not proved: {', '.join(failed)}\n")
        return 1
    sys.stdout.write(f"all {len(results)} identities proved\n")
    return 0


def _vectors_export(args: argparse.Namespace) -> int:
    from relpos.equivalence.tolerance import suggested_for_vectors
    from relpos.spec.vectors import export

    written = export(
        args.out,
        encodings=args.encoding or None,
        tolerance=suggested_for_vectors,
        large=args.large,
    )
    sys.stdout.write(f"wrote {len(written)} vector files and manifest.json to {args.out}\n")
    return 0


def _vectors_verify(args: argparse.Namespace) -> int:
    from relpos.spec.vectors import verify

    checked, differences = verify(args.directory)
    for difference in differences:
        sys.stdout.write(f"{difference}\n")
    if checked == 0:
        sys.stdout.write(f"no vector files found in {args.directory}\n")
        return 1
    if differences:
        sys.stdout.write(f"{len(differences)} differences in {checked} files\n")
        return 1
    sys.stdout.write(f"{checked} files verified: every value agrees with the oracle\n")
    return 0


def _summary(results: list, budget: str) -> str:
    from relpos.equivalence.runner import FAILED

    statuses = ("pass", *FAILED, "skip")
    counts = {s: sum(r.status == s for r in results) for s in statuses}
    died = "".join(
        f", {counts[s]} {'crashed' if s == 'crash' else 'timed out'}"
        for s in ("crash", "timeout")
        if counts[s]
    )
    return (
        f"\n{counts['pass']} passed, {counts['fail']} failed, {counts['error']} "
        f"errors{died}, {counts['skip']} skipped (budget {budget})\n"
    )


def _progress(n: int, total: int, result: Any, verbose: bool) -> None:
    if result.status != "skip" or verbose:
        sys.stderr.write(
            f"[{n}/{total}] {result.implementation} {result.property} {result.dtype}: "
            f"{result.status} ({result.examples} examples, {result.seconds:.1f}s)\n"
        )


def _run_seed(args: argparse.Namespace) -> int:
    """Set the run's seed from --seed and say it first: the whole run replays from it."""
    from relpos.equivalence.profiles import run_seed, set_run_seed

    if args.seed is not None:
        set_run_seed(args.seed)
    run_seed()  # a malformed RELPOS_SEED is refused here, before anything is said
    sys.stdout.write(f"seed {run_seed()} (replay this run with --seed {run_seed()})\n")
    return run_seed()


def _timeout_value(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"--timeout {text!r} must be a positive number of seconds")
    return value


def _seed_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"--seed {text!r} must be an integer in [0, 2**32)")
    return value


def _workers(text: str) -> int:
    if text == "auto":
        return max(1, os.cpu_count() or 1)
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"-n {text!r} must be a positive integer or 'auto'")
    return value


def _device_value(text: str) -> str:
    from relpos.equivalence.backends import _device_name

    try:
        return _device_name(text, "--device")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _use_device(args: argparse.Namespace, backends: Sequence[str]) -> bool:
    """Put every later tensor on --device (when given), once each of ``backends`` can;
    False (the reason written) when one cannot."""
    from relpos.equivalence.backends import use_device

    if args.device is None:
        return True
    problems = use_device(args.device, tuple(backends))
    for name, why in problems.items():
        sys.stderr.write(f"relpos check: --device {args.device}: {name}: {why}\n")
    return not problems


def _nothing_checked(results: Sequence[Any]) -> int:
    """0, or 2 when every check was skipped: a run that checked nothing is no verdict."""
    if results and all(r.status == "skip" for r in results):
        sys.stderr.write(
            "relpos check: every selected check was skipped, so nothing was checked "
            "(--verbose lists why)\n"
        )
        return 2
    return 0


def _unwritable(path: str | None) -> str:
    """Why the report could not be written to ``path`` (empty if it could): checked before
    any work, so that a long run does not end in a write error."""
    if path is None:
        return ""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        return "is a directory"
    if not folder.is_dir():
        return f"no directory {folder}"
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        return "not writable"
    return ""


def _check(args: argparse.Namespace) -> int:
    from relpos.equivalence.profiles import active_profile

    try:
        budget = args.budget or active_profile()
    except ValueError as exc:  # HYPOTHESIS_PROFILE
        sys.stderr.write(f"relpos check: {exc}\n")
        return 2
    if args.variant and args.target:
        sys.stderr.write(
            f"relpos check: --variant {args.variant[0]} names a bundled implementation; a "
            "--target is checked as it is\n"
        )
        return 2
    if args.timeout is not None and not (args.target or args.isolate):
        sys.stderr.write(
            f"relpos check: --timeout {args.timeout:g} applies to --target and --isolate only "
            "(the bundled implementations run in this process otherwise)\n"
        )
        return 2
    if args.isolate and args.target:
        sys.stderr.write(
            "relpos check: --isolate is for the bundled implementations; a "
            "--target always runs in a worker process\n"
        )
        return 2
    for flag in ("json", "html"):
        unwritable = _unwritable(getattr(args, flag))
        if unwritable:
            sys.stderr.write(f"relpos check: --{flag} {getattr(args, flag)}: {unwritable}\n")
            return 2
    if args.html:
        from relpos.equivalence.pictures import require_matplotlib

        try:
            require_matplotlib("--html")
        except ImportError as exc:
            sys.stderr.write(f"relpos check: {exc}\n")
            return 2
    if not args.target:
        for flag in ("adapter", "profile", "allow", "exclude"):
            if getattr(args, flag):
                sys.stderr.write(f"relpos check: --{flag} needs --target\n")
                return 2
        from relpos.impls import registry

        known = sorted({i.variant for i in registry()})
        unknown = [v for v in args.variant or () if v not in known]
        if unknown:
            sys.stderr.write(
                f"relpos check: --variant {unknown[0]} is not a bundled variant: "
                f"{', '.join(known)}\n"
            )
            return 2
    try:
        seed = _run_seed(args)
    except ValueError as exc:  # RELPOS_SEED
        sys.stderr.write(f"relpos check: {exc}\n")
        return 2
    if args.target:
        return _check_target(args, budget, seed)
    from relpos.equivalence.parallel import run_jobs
    from relpos.equivalence.properties import PROPERTIES
    from relpos.equivalence.report import matrix, to_json, write_json
    from relpos.impls import registry

    chosen = [
        i
        for i in registry()
        if (not args.encoding or i.encoding in args.encoding)
        and (not args.backend or i.backend in args.backend)
        and (not args.variant or i.variant in args.variant)
    ]
    if not _use_device(args, sorted({i.backend for i in chosen})):
        return 2
    if args.device:
        sys.stdout.write(f"tensors on {args.device}\n")
    if args.isolate:
        from relpos.equivalence.isolation import Isolated, set_timeout

        chosen = [Isolated.of(i) for i in chosen]
        if args.timeout is not None:
            set_timeout(args.timeout)
    props = [p for p in PROPERTIES.values() if not args.property or p.name in args.property]
    jobs = [
        (impl, prop, dtype)
        for impl in chosen
        for prop in props
        for dtype in prop.dtypes
        if not args.dtype or dtype in args.dtype
    ]
    if not jobs:
        sys.stderr.write("relpos check: nothing selected\n")
        return 2
    done = {"n": 0}

    def progress(result: Any) -> None:
        done["n"] += 1
        _progress(done["n"], len(jobs), result, args.verbose)

    results = run_jobs(
        [(impl, prop.name, dtype) for impl, prop, dtype in jobs],
        budget=budget,
        workers=args.workers,
        seed=seed,
        on_result=progress,
    )
    sys.stdout.write(matrix(results))
    from relpos.equivalence.runner import FAILED

    bad = [r for r in results if r.status in FAILED]
    for r in bad:
        sys.stdout.write(
            f"\n{r.status.upper()}: {r.implementation} {r.property} {r.dtype}\n{r.message}\n"
        )
    if args.json:
        write_json(args.json, to_json(results, budget=budget, seed=seed))
        sys.stdout.write(f"\nreport written to {args.json}\n")
    if args.html:
        from relpos.equivalence.html_report import write_html

        by_id = {impl.id: impl for impl in chosen}
        write_html(
            args.html,
            results,
            lambda r: by_id[r.implementation],
            budget=budget,
            seed=seed,
            subject="the bundled implementations",
        )
        sys.stdout.write(f"\nHTML report written to {args.html}\n")
    sys.stdout.write(_summary(results, budget))
    return 1 if bad else _nothing_checked(results)


def _check_target(args: argparse.Namespace, budget: str, seed: int | None) -> int:
    from relpos.equivalence.report import matrix, to_json, write_json
    from relpos.equivalence.targets import (
        check_target,
        diagnosis_text,
        failure_report,
        make_target,
    )
    from relpos.spec import ArgumentError

    if not args.encoding or len(args.encoding) != 1:
        sys.stderr.write("relpos check: --target needs exactly one --encoding\n")
        return 2
    if args.backend and len(args.backend) != 1:
        sys.stderr.write("relpos check: --target takes at most one --backend\n")
        return 2
    if sys.path[0] != "":
        sys.path.insert(0, "")  # targets are importable from the working directory
    if args.timeout is not None:
        from relpos.equivalence.isolation import set_timeout

        set_timeout(args.timeout)
    try:
        target = make_target(
            args.target,
            encoding=args.encoding[0],
            profile=args.profile,
            adapter=args.adapter,
            backend=args.backend[0] if args.backend else None,
            allow=args.allow,
            exclude=args.exclude,
        )
    except ArgumentError as exc:
        sys.stderr.write(f"relpos check: {exc}\n")
        return 2
    if not _use_device(args, [target.backend]):
        return 2
    kept = "; its adapter keeps one module per configuration across calls" * target.stateful
    kept += f"; tensors on {args.device}" * bool(args.device)
    sys.stderr.write(
        f"checking {target.target_path} as {target.encoding} under profile "
        f"{target.profile.label} on {target.backend}{kept}\n"
    )
    from relpos.equivalence.properties import PROPERTIES
    from relpos.equivalence.targets import TARGET_PROPERTIES

    count = {"n": 0}
    total = sum(
        1
        for name in args.property or TARGET_PROPERTIES
        for dtype in PROPERTIES[name].dtypes
        if not args.dtype or dtype in args.dtype
    )

    def progress(result: Any) -> None:
        count["n"] += 1
        _progress(count["n"], total, result, args.verbose)

    try:
        results = check_target(
            target,
            properties=args.property,
            dtypes=args.dtype,
            budget=budget,
            on_result=progress,
            workers=args.workers,
        )
    except ArgumentError as exc:
        sys.stderr.write(f"relpos check: nothing selected: {exc}\n")
        return 2
    sys.stdout.write(matrix(results))
    from relpos.equivalence.runner import FAILED

    bad = [r for r in results if r.status in FAILED]
    diagnosis = diagnosis_text(target, bad) if bad else ""
    if bad:
        sys.stdout.write("\n" + failure_report(target, results, diagnosis) + "\n")
    if args.json:
        extra = {
            "target": target.target_path,
            "adapter": target.adapter_path or None,
            "profile": target.profile.name,
            "adjustments": list(target.profile.adjustments),
            "backend": target.backend,
        }
        write_json(args.json, to_json(results, budget=budget, extra=extra, seed=seed))
        sys.stdout.write(f"\nreport written to {args.json}\n")
    if args.html:
        from relpos.equivalence.html_report import write_html

        write_html(
            args.html,
            results,
            lambda r: target,
            budget=budget,
            seed=seed,
            subject=f"{target.target_path} as {target.encoding} under profile "
            f"{target.profile.label}",
            diagnosis=diagnosis,
        )
        sys.stdout.write(f"\nHTML report written to {args.html}\n")
    sys.stdout.write(_summary(results, budget))
    return 1 if bad else _nothing_checked(results)


def _profiles(args: argparse.Namespace) -> int:
    from relpos.equivalence.targets import conventions
    from relpos.spec import all_encodings

    for enc in all_encodings():
        if args.encoding and enc.name not in args.encoding:
            continue
        sys.stdout.write(f"{enc.name}: conventions\n")
        for axis in enc.all_axes():
            sys.stdout.write(f"  {axis.name}: {axis.doc}\n")
            for value in axis.values:
                mark = " (spec)" if value.name == axis.spec_value else ""
                sys.stdout.write(f"    {value.name}{mark}: {value.doc}\n")
        sys.stdout.write(f"{enc.name}: profiles\n")
        for p in enc.all_profiles():
            own = conventions(enc, p)
            differs = {a: v for a, v in own.items() if p.conventions.get(a)}
            said = ", ".join(f"{a} {v}" for a, v in differs.items()) or "the spec's conventions"
            sys.stdout.write(f"  {p.name}: {p.title}\n    {said}\n    source: {p.source}\n")
            for note in p.all_notes:
                sys.stdout.write(f"    - {note}\n")
        sys.stdout.write("\n")
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.oracle:
        from relpos.equivalence.bench import oracle

        size = int(args.sizes.split(",")[0]) if args.sizes else 512
        return oracle(size, args.rounds, args.out)
    from relpos.equivalence.bench import main as bench

    return bench(args.sizes or "256,512,1024,2048", args.rounds, args.select, args.out)


def _search_options(parser: argparse.ArgumentParser) -> None:
    """--budget, --seed, --timeout and --json of a search command (:func:`_search_setup`)."""
    parser.add_argument("--budget", choices=["dev", "ci", "thorough"])
    parser.add_argument("--seed", type=_seed_value, metavar="N")
    parser.add_argument("--timeout", type=_timeout_value, metavar="SECONDS")
    parser.add_argument("--json", metavar="FILE")


def _search_setup(args: argparse.Namespace, command: str) -> tuple[str, int] | None:
    """The budget and seed of a search command, its --json checked writable and its
    --timeout set; None (the reason written) where an argument is refused."""
    from relpos.equivalence.isolation import set_timeout
    from relpos.equivalence.profiles import active_profile

    try:
        budget = args.budget or active_profile()
        seed = _run_seed(args)
    except ValueError as exc:  # HYPOTHESIS_PROFILE, RELPOS_SEED
        sys.stderr.write(f"relpos {command}: {exc}\n")
        return None
    unwritable = _unwritable(args.json)
    if unwritable:
        sys.stderr.write(f"relpos {command}: --json {args.json}: {unwritable}\n")
        return None
    if args.timeout is not None:
        set_timeout(args.timeout)
    return budget, seed


def _frequencies(args: argparse.Namespace) -> int:
    import json

    from relpos.equivalence.frequencies import BUNDLED, check_frequencies
    from relpos.impls import backend_available
    from relpos.spec import ArgumentError

    setup = _search_setup(args, "frequencies")
    if setup is None:
        return 2
    budget, seed = setup
    if args.target is not None:
        targets = [(args.target, False)]
    elif args.dtype not in ("float32", "float64"):
        sys.stderr.write(
            f"relpos frequencies: --dtype {args.dtype}: the bundled implementations compute "
            "frequencies in float32 or float64 (a model in a half type rotates by float32 "
            "angles); --dtype is for a --target that computes in a half type\n"
        )
        return 2
    else:
        targets = [(path, True) for name, path in BUNDLED.items() if backend_available(name)[0]]
        if not targets:
            sys.stderr.write(
                "relpos frequencies: neither torch nor jax is installed, so nothing bundled "
                "can run (pip install 'relpos-conformance[torch]'), and no --target was given\n"
            )
            return 2
    reports, failed, passed, total = [], 0, 0, 0
    for target, precision in targets:
        try:
            results = check_frequencies(
                target, args.rope_type, dtype=args.dtype, budget=budget, precision=precision
            )
        except ArgumentError as exc:
            sys.stderr.write(f"relpos frequencies: {exc}\n")
            return 2
        if len(targets) > 1:
            sys.stdout.write(f"\n{target} (precision {args.dtype})\n")
        extra = f", 'precision': {args.dtype!r}" if precision else ""
        _frequency_table(results, target, extra)
        reports.append({"target": target, "results": [vars(r) for r in results]})
        failed += sum(r.status not in ("pass", "skip") for r in results)
        passed += sum(r.status == "pass" for r in results)
        total += len(results)
    if args.json:
        report: dict[str, Any] = {"budget": budget, "seed": seed, "dtype": args.dtype}
        report.update(reports[0] if args.target is not None else {"targets": reports})
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(
        f"\n{passed} passed, {failed} failed, {total - passed - failed} skipped (budget {budget})\n"
    )
    return 1 if failed else 0


def _frequency_table(results: list[Any], target: str, extra: str, key: str = "rope_type") -> None:
    """One target's table, then its failures and skips with the smallest failing call."""
    width = max(len(key), *(len(getattr(r, key)) for r in results))
    sys.stdout.write(f"{key:<{width}}  status   examples  worst/bound\n")
    for r in results:
        sys.stdout.write(
            f"{getattr(r, key):<{width}}  {r.status:<7}  {r.examples:>8}  {r.worst_ratio:.3g}\n"
        )
    failed = [r for r in results if r.status not in ("pass", "skip")]
    for r in failed + [r for r in results if r.status == "skip"]:
        sys.stdout.write(f"\n{r.status} {getattr(r, key)}: {r.message}\n")
        if r.call is not None:
            call = repr(r.call)[:-1] + extra + "}"
            sys.stdout.write(f"  smallest call: {target}(**{call})\n")


def _rotations(args: argparse.Namespace) -> int:
    import json

    from relpos.equivalence.frequencies import check_rotations
    from relpos.spec import ArgumentError

    setup = _search_setup(args, "rotations")
    if setup is None:
        return 2
    budget, seed = setup
    try:
        results = check_rotations(args.target, args.layout, dtype=args.dtype, budget=budget)
    except ArgumentError as exc:
        sys.stderr.write(f"relpos rotations: {exc}\n")
        return 2
    _frequency_table(results, args.target, "", key="layout")
    failed = sum(r.status not in ("pass", "skip") for r in results)
    passed = sum(r.status == "pass" for r in results)
    if args.json:
        report = {
            "target": args.target,
            "budget": budget,
            "seed": seed,
            "dtype": args.dtype,
            "results": [vars(r) for r in results],
        }
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(
        f"\n{passed} passed, {failed} failed, {len(results) - passed - failed} skipped "
        f"(budget {budget})\n"
    )
    return 1 if failed else 0


def _position_ids(args: argparse.Namespace) -> int:
    import json

    from relpos.equivalence.frequencies import check_position_ids
    from relpos.spec import ArgumentError

    setup = _search_setup(args, "position-ids")
    if setup is None:
        return 2
    budget, seed = setup
    try:
        result = check_position_ids(
            args.target, budget=budget, timed=args.timed, frames=args.frames
        )
    except ArgumentError as exc:
        sys.stderr.write(f"relpos position-ids: {exc}\n")
        return 2
    _frequency_table([result], args.target, "", key="layout")
    if args.json:
        report = {"target": args.target, "budget": budget, "seed": seed, "result": vars(result)}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    failed = result.status not in ("pass", "skip")
    sys.stdout.write(f"\n{result.status} (budget {budget})\n")
    return 1 if failed else 0


def _explain_results(args: argparse.Namespace) -> tuple[list[Any], Any] | str:
    """The results to picture and how to rebuild their implementations, from a report JSON
    or from a repro's own arguments (one result, its draw the given input); a message when
    the arguments are wrong."""
    import json

    from relpos.equivalence.adjustments import recorded
    from relpos.equivalence.draws import Draw
    from relpos.equivalence.report import result_from_row
    from relpos.equivalence.runner import Result
    from relpos.impls import get

    target = None
    if args.report:
        if args.draw:
            return "give a report or a repro's --draw, not both"
        try:
            document = json.loads(Path(args.report).read_text())
            rows = document["results"]
            results = [result_from_row(row) for row in rows]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f"{args.report} is not a report of relpos check --json: {exc}"
        if args.check:
            results = [
                r for r in results if f"{r.implementation}/{r.property}/{r.dtype}" in args.check
            ]
            if not results:
                return f"--check {args.check[0]}: no such result in {args.report}"
        if document.get("target"):
            target = (
                document["target"],
                document.get("profile"),
                document.get("adapter"),
                document.get("backend"),
                *recorded(document.get("adjustments", [])),
            )
    else:
        missing = [f"--{n}" for n in ("property", "dtype", "draw") if not getattr(args, n)]
        if not args.implementation and not args.target:
            missing.insert(0, "--implementation (or --target)")
        if missing:
            return f"give a report JSON, or a repro's arguments: missing {', '.join(missing)}"
        try:
            draw = Draw.parse(args.draw)
        except ValueError as exc:
            return f"--draw: {exc}"
        if args.target:
            target = (args.target, args.profile, args.adapter, args.backend, (), ())
            backend, variant = args.backend or "torch", "target"
        else:
            try:
                backend, encoding, variant = args.implementation.split("-", 2)
                get(encoding, backend, variant)
            except (ValueError, KeyError) as exc:
                return f"--implementation {args.implementation}: {exc}"
        results = [
            Result(draw.encoding, backend, variant, args.property, args.dtype, "fail", draw=draw)
        ]
    if target is None:
        return results, lambda r: get(r.encoding, r.backend, r.variant)
    from relpos.equivalence.targets import make_target

    path, profile, adapter, backend, allow, exclude = target
    if sys.path[0] != "":
        sys.path.insert(0, "")  # targets are importable from the working directory
    built = make_target(
        path,
        encoding=results[0].encoding,
        profile=profile,
        adapter=adapter,
        backend=backend,
        allow=allow,
        exclude=exclude,
    )
    return results, lambda r: built


def _explain(args: argparse.Namespace) -> int:
    from relpos.equivalence.pictures import require_matplotlib
    from relpos.spec import ArgumentError

    try:
        require_matplotlib("relpos explain")
    except ImportError as exc:
        sys.stderr.write(f"relpos explain: {exc}\n")
        return 2
    from relpos.equivalence.html_report import GIVEN, SLUGS, draw_pictures, picture
    from relpos.equivalence.properties import PROPERTIES

    if args.property and args.property not in PROPERTIES:
        sys.stderr.write(
            f"relpos explain: --property {args.property} is not a property: "
            f"{', '.join(PROPERTIES)}\n"
        )
        return 2
    try:
        found = _explain_results(args)
    except ArgumentError as exc:
        sys.stderr.write(f"relpos explain: {exc}\n")
        return 2
    if isinstance(found, str):
        sys.stderr.write(f"relpos explain: {found}\n")
        return 2
    results, implementation = found
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report:
        pictures = draw_pictures(results, implementation)
    else:
        given = results[0]
        pictures = [picture(given, implementation(given), given.draw, GIVEN)]
    if not pictures:
        sys.stderr.write("relpos explain: no failure and no passing input with a draw to picture\n")
        return 2
    for n, shown in enumerate(pictures):
        r = shown.result
        name = f"{n:02d}-{r.implementation}-{r.property}-{r.dtype}-{SLUGS[shown.kind]}.png"
        said = ", ".join(f"{k} {v:.3g}" for k, v in (shown.worst or {}).items())
        sys.stdout.write(f"{shown.kind}: {r.implementation} {r.property} {r.dtype}\n")
        sys.stdout.write(f"  {shown.draw!r}\n")
        if shown.png:
            (out / name).write_bytes(shown.png)
            sys.stdout.write(f"  largest error / bound: {said}\n  written to {out / name}\n")
        if shown.note:
            sys.stdout.write(f"  {shown.note}\n")
    return 0


def _version() -> str:
    """The installed distribution's version (the one pip reports)."""
    from importlib import metadata

    try:
        return metadata.version("relpos-conformance")
    except metadata.PackageNotFoundError:
        return "unknown (relpos-conformance is not installed)"


def _rope_types() -> list[str]:
    from relpos.spec.rope_scaling import VARIANTS

    return list(VARIANTS)


def _parser() -> argparse.ArgumentParser:
    from relpos.spec import ENCODINGS

    parser = argparse.ArgumentParser(
        prog="relpos",
        description="Conformance reference for relative position encodings in attention.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    spec = commands.add_parser("spec", help="the specification: formulas and proofs")
    spec_commands = spec.add_subparsers(dest="spec_command", required=True)
    show = spec_commands.add_parser("show", help="print an encoding's formula sheet")
    show.add_argument("name", choices=sorted(ENCODINGS))
    show.add_argument("--latex", action="store_true", help="formulas as LaTeX")
    show.set_defaults(run=_spec_show)
    prove = spec_commands.add_parser("prove", help="prove the spec's identities")
    prove.add_argument(
        "--encoding",
        action="append",
        choices=sorted(ENCODINGS),
        help="only this encoding (repeatable)",
    )
    prove.add_argument("--verbose", action="store_true", help="print every proof's detail")
    prove.set_defaults(run=_spec_prove)

    vectors = commands.add_parser("vectors", help="golden test vectors")
    vector_commands = vectors.add_subparsers(dest="vectors_command", required=True)
    export = vector_commands.add_parser("export", help="write one JSON file per golden case")
    export.add_argument("--out", required=True, help="directory to write")
    export.add_argument(
        "--encoding",
        action="append",
        choices=sorted(ENCODINGS),
        help="only this encoding (repeatable)",
    )
    export.add_argument(
        "--large",
        action="store_true",
        help="also the long-position cases (256 queries after 768 memory positions, "
        "evaluated in balls; about 10 MB each)",
    )
    export.set_defaults(run=_vectors_export)
    verify = vector_commands.add_parser("verify", help="re-derive vector files, report differences")
    verify.add_argument("directory")
    verify.set_defaults(run=_vectors_verify)
    check = commands.add_parser(
        "check",
        help="run the conformance properties on the bundled implementations, or on a target",
    )
    from relpos.equivalence.profiles import PROFILES
    from relpos.equivalence.properties import PROPERTIES
    from relpos.impls import BACKENDS

    check.add_argument("--encoding", action="append", choices=sorted(ENCODINGS))
    check.add_argument("--backend", action="append", choices=list(BACKENDS))
    check.add_argument("--variant", action="append")
    check.add_argument("--property", action="append", choices=list(PROPERTIES))
    check.add_argument(
        "--dtype", action="append", choices=["float64", "float32", "bfloat16", "float16"]
    )
    check.add_argument(
        "--budget",
        choices=list(PROFILES),
        help="Hypothesis profile (default: HYPOTHESIS_PROFILE, ci under CI, else dev)",
    )
    check.add_argument(
        "--target", metavar="MODULE:FUNCTION", help="check this function instead of the bundle"
    )
    check.add_argument(
        "--adapter",
        metavar="MODULE:FUNCTION",
        help="adapter(target, q, k, v, **arguments) mapping the canonical call onto the target",
    )
    check.add_argument(
        "--profile",
        metavar="NAME",
        help="the target's convention profile (relpos profiles lists them; default: the spec)",
    )
    from relpos.equivalence.adjustments import KINDS, help_text

    for kind in KINDS:
        check.add_argument(
            f"--{kind}", action="append", default=[], metavar="NAME[=VALUES]", help=help_text(kind)
        )
    check.add_argument(
        "--timeout",
        type=_timeout_value,
        metavar="SECONDS",
        help="how long one call of a --target may take before it is stopped and reported as a "
        "timeout (default: RELPOS_TIMEOUT, else 60); a target runs in a worker process",
    )
    check.add_argument(
        "--isolate",
        action="store_true",
        help="run the bundled implementations in worker processes, as a --target runs: a "
        "hang or a crash is a finding (with --timeout)",
    )
    check.add_argument(
        "--seed",
        type=_seed_value,
        metavar="N",
        help="draw from this seed (printed first by every run, and kept in the JSON): "
        "replays a whole run",
    )
    check.add_argument(
        "-n",
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="spread the checks over N processes ('auto': one per core); default 1",
    )
    check.add_argument(
        "--device",
        type=_device_value,
        metavar="DEVICE",
        help="run the implementations (or the --target) with tensors on cpu, cuda or "
        "cuda:N (default: RELPOS_DEVICE, else cpu); the oracle stays on the CPU",
    )
    check.add_argument("--json", metavar="FILE", help="write the report as JSON")
    check.add_argument(
        "--html",
        metavar="FILE",
        help="write the report as one self-contained HTML page: the matrix coloured by worst "
        "error, the coverage, and pictures of each failure and of the closest passing inputs "
        "(needs matplotlib: the report extra)",
    )
    check.add_argument("--verbose", action="store_true", help="also list skipped checks")
    check.set_defaults(run=_check)

    explain = commands.add_parser(
        "explain",
        help="picture where an implementation differs from the oracle, to PNG",
        description="Picture, for one input, every element's error as a fraction of its bound: "
        "heatmaps over (query, key), the error against distance, against the table index "
        "(clip row, bucket) and per head. From a report of relpos check --json (each failure "
        "and, in each encoding, the passing input closest to its bound), or from a repro's "
        "own arguments.",
    )
    explain.add_argument("report", nargs="?", help="a report written by relpos check --json")
    explain.add_argument(
        "--check",
        action="append",
        metavar="IMPLEMENTATION/PROPERTY/DTYPE",
        help="only this result of the report (repeatable)",
    )
    explain.add_argument("--implementation", help="a bundled implementation, as torch-shaw-fast")
    explain.add_argument("--property", help="the property the repro names")
    explain.add_argument("--dtype", choices=("float64", "float32", "bfloat16", "float16"))
    explain.add_argument("--draw", help="the repro's Draw(...)")
    explain.add_argument("--target", metavar="MODULE:FUNCTION", help="a third-party target")
    explain.add_argument("--profile", help="the target's convention profile")
    explain.add_argument("--adapter", metavar="MODULE:FUNCTION", help="the target's adapter")
    explain.add_argument("--backend", choices=("torch", "jax"), help="the target's backend")
    explain.add_argument("--out", default=".", help="the directory for the PNG files")
    explain.set_defaults(run=_explain)

    freq = commands.add_parser(
        "frequencies",
        help="a RoPE target's inverse frequencies and attention factor against the spec, per "
        "scaling variant",
    )
    freq.add_argument(
        "--target",
        metavar="MODULE:FUNCTION",
        help="function(rope_type=..., rotary_dim=..., base=..., seq_len=..., **parameters) "
        "-> (inverse frequencies, attention factor); e.g. "
        "relpos.equivalence.adapters.huggingface:llama_rotary_frequencies (default: the "
        "bundled implementations of each installed backend)",
    )
    freq.add_argument("--rope-type", action="append", choices=list(_rope_types()))
    freq.add_argument(
        "--dtype",
        default="float32",
        choices=["float64", "float32", "bfloat16", "float16"],
        help="the dtype the target computes its frequencies in (default float32; the bundled "
        "implementations: float32 or float64)",
    )
    _search_options(freq)
    freq.set_defaults(run=_frequencies)

    rot = commands.add_parser(
        "rotations",
        help="a RoPE target's cos and sin for several position ids per token (M-RoPE, 2D axial) "
        "against the spec, per layout",
    )
    rot.add_argument(
        "--target",
        required=True,
        metavar="MODULE:FUNCTION",
        help="function(positions, *, rotary_dim, base, [section,] layout) -> (cos, sin), each "
        "(L, r/2); positions (3, L) for M-RoPE, (2, L) rows and columns for 2D axial; e.g. "
        "relpos.equivalence.adapters.huggingface:pixtral_rotary",
    )
    rot.add_argument(
        "--layout",
        action="append",
        required=True,
        choices=["sectioned", "interleaved", "split", "alternating"],
        help="the layout to check, repeatable: M-RoPE's sectioned or interleaved, 2D axial's "
        "split or alternating (a target raising NotImplementedError for one skips it)",
    )
    rot.add_argument(
        "--dtype",
        default="float32",
        choices=["float64", "float32", "bfloat16", "float16"],
        help="the dtype the target computes its angles in (default float32)",
    )
    _search_options(rot)
    rot.set_defaults(run=_rotations)

    ids = commands.add_parser(
        "position-ids",
        help="a multimodal model's M-RoPE position ids for prompts of text, images and videos, "
        "and during generation, against the spec",
    )
    ids.add_argument(
        "--target",
        required=True,
        metavar="MODULE:FUNCTION",
        help="function(segments, *, generated) -> position ids (3, L + generated); segments "
        "[('text', n) | ('image', (1, h, w)) | ('video', (t, h, w)), ...]; e.g. "
        "relpos.equivalence.adapters.huggingface:qwen2_vl_position_ids",
    )
    ids.add_argument(
        "--timed",
        action="store_true",
        help="the target also takes temporal_interval, the temporal ids per temporal step of a "
        "video (tokens per second x seconds per temporal patch, an exact Fraction), and the "
        "draws pick it; e.g. relpos.equivalence.adapters.huggingface:qwen2_5_vl_position_ids",
    )
    ids.add_argument(
        "--frames",
        action="store_true",
        help="videos come one frame at a time (t = 1), each after text (its timestamp), as "
        "Qwen3-VL takes them; e.g. relpos.equivalence.adapters.huggingface:qwen3_vl_position_ids",
    )
    _search_options(ids)
    ids.set_defaults(run=_position_ids)

    profiles = commands.add_parser(
        "profiles", help="the conventions libraries differ in, and the named profiles"
    )
    profiles.add_argument("--encoding", action="append", choices=sorted(ENCODINGS))
    profiles.set_defaults(run=_profiles)

    bench = commands.add_parser(
        "bench",
        help="benchmark every implementation against the attention floor (run from a checkout)",
    )
    bench.add_argument(
        "--sizes",
        help="comma-separated L values (default 256,512,1024,2048; --oracle: the first, "
        "default 512)",
    )
    bench.add_argument("--rounds", type=int, default=5, help="timed rounds per case")
    bench.add_argument(
        "--oracle",
        action="store_true",
        help="instead: the oracle's ball path against numpy float64, every encoding "
        "(tables in OUT/oracle)",
    )
    bench.add_argument("--select", help="only cases whose id contains this (pytest -k)")
    bench.add_argument("--out", default="benchmarks/results", help="where tables and JSON go")
    bench.set_defaults(run=_bench)

    study = commands.add_parser(
        "study", help="studies: what relative positions do to small trained models"
    )
    study_commands = study.add_subparsers(dest="study_command", required=True)
    study_commands.add_parser("list", help="the studies").set_defaults(run=_study_list)
    run = study_commands.add_parser("run", help="run a study (finished runs are read back)")
    run.add_argument("name", help="a study, from relpos study list")
    run.add_argument("--quick", action="store_true", help="a small version, in minutes")
    run.add_argument("--seeds", type=int, default=3, help="seeds per configuration (default 3)")
    run.add_argument(
        "-n",
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="train runs in N processes at once ('auto': one per core); default 1",
    )
    run.add_argument(
        "--out", default="studies-results", help="where runs and results go (default %(default)s)"
    )
    run.set_defaults(run=_study_run)
    timed = study_commands.add_parser(
        "bench",
        help="training tokens per second of each position scheme's model, against the same "
        "model with scaled_dot_product_attention",
    )
    timed.add_argument("--steps", type=int, default=20, help="steps per round (default 20)")
    timed.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    timed.set_defaults(run=_study_bench)
    return parser


def _study_bench(args: argparse.Namespace) -> int:
    from relpos.studies.model import throughput

    rates = throughput(steps=args.steps, rounds=args.rounds)
    floor = rates["sdpa"]
    sys.stdout.write("| scheme | training tokens/s | x sdpa |\n|---|---:|---:|\n")
    for scheme, rate in rates.items():
        sys.stdout.write(f"| {scheme} | {rate:,.0f} | {rate / floor:.2f} |\n")
    return 0


def _study_list(args: argparse.Namespace) -> int:
    from relpos.studies import STUDIES

    for study in STUDIES.values():
        sys.stdout.write(f"{study.name}\n    {study.summary}\n")
    return 0


def _study_run(args: argparse.Namespace) -> int:
    from relpos.studies import run_study

    try:
        results = run_study(
            args.name, Path(args.out), quick=args.quick, seeds=args.seeds, workers=args.workers
        )
    except ValueError as exc:
        sys.stderr.write(f"relpos study run: {exc}\n")
        return 2
    folder = Path(args.out) / args.name
    table = (folder / "results.md").read_text()
    sys.stdout.write(
        f"{table}\n{len(results['runs'])} runs ({results['resumed']} read back from earlier "
        f"runs); results in {folder}\n"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
