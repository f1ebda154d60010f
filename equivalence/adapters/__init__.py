"""Adapters for libraries this project checks (``relpos check --adapter``).

An adapter maps the canonical call ``(q, k, v, **arguments)`` (already in the profile's
conventions) onto a library's own function and returns ``out``, or ``(out, probs, scores)``
when it takes ``with_weights``. See :mod:`relpos.equivalence.targets` for the contract and
:mod:`relpos.equivalence.adapters.huggingface` for worked examples.
"""
