"""Planted mistakes, one module per ``course_lib`` topic, each with a list ``MUTATIONS``.

See :mod:`verification.mutations` for how they are run. A module here looks like::

    from verification.mutations import Mutation

    MUTATIONS = [
        Mutation(
            name="posterior-variance-beta",
            file="diffusion.py",
            old="<exact source text, found exactly once>",
            new="<the same text with the mistake>",
            breaks="the reverse step uses beta_t where the forward posterior has beta-tilde_t",
            notebooks=("04",),
            tests=("tests/test_diffusion.py",),
        ),
    ]
"""
