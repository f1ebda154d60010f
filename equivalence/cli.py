"""The ``relpos`` command line.

relpos spec show NAME [--latex]        the formula sheet of an encoding
relpos spec prove [--encoding NAME]    prove the spec's identities, print a table
relpos vectors export --out DIR        write the golden vectors
relpos vectors verify DIR              re-derive golden vectors, report differences
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _spec_show(args: argparse.Namespace) -> int:
    from spec.render import show

    sys.stdout.write(show(args.name, latex=args.latex))
    return 0


def _spec_prove(args: argparse.Namespace) -> int:
    from spec import get_encoding
    from spec.render import proof_table, prove

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
    from equivalence.tolerance import suggested_for_vectors
    from spec.vectors import export

    written = export(args.out, encodings=args.encoding or None, tolerance=suggested_for_vectors)
    sys.stdout.write(f"wrote {len(written)} vector files and manifest.json to {args.out}\n")
    return 0


def _vectors_verify(args: argparse.Namespace) -> int:
    from spec.vectors import verify

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


def _parser() -> argparse.ArgumentParser:
    from spec import ENCODINGS

    parser = argparse.ArgumentParser(
        prog="relpos",
        description="Conformance reference for relative position encodings in attention.",
    )
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
    export.set_defaults(run=_vectors_export)
    verify = vector_commands.add_parser("verify", help="re-derive vector files, report differences")
    verify.add_argument("directory")
    verify.set_defaults(run=_vectors_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
