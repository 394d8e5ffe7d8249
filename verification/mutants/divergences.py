"""Planted mistakes in ``course_lib/divergences.py`` (KL and JS by quadrature, the forward and
reverse Gaussian fits of notebook 00).

Each names the notebook-00 assert and the unit tests expected to catch it; see
:mod:`verification.mutations`.
"""

from verification.mutations import Mutation

NB = ("00",)
TESTS = ("tests/test_divergences.py",)

MUTATIONS = [
    Mutation(
        name="kl-log-ratio-reversed",
        file="divergences.py",
        old="return torch.where(a > 0, a * (log_a - log_b), torch.zeros_like(a))",
        new="return torch.where(a > 0, a * (log_b - log_a), torch.zeros_like(a))",
        breaks="the KL integrand p log(q/p) instead of p log(p/q): KL(p || q) comes out as minus itself "
               "(and the JS divergence, clamped at 0, vanishes)",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="js-mixture-not-halved",
        file="divergences.py",
        old="log_m = torch.logaddexp(log_p, log_q) - math.log(2.0)",
        new="log_m = torch.logaddexp(log_p, log_q)",
        breaks="the JS divergence against p + q instead of the mixture m = (p + q) / 2: every value drops "
               "by log 2 (and is clamped to 0), so JS no longer reaches log 2 on disjoint supports",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="forward-fit-variance-as-std",
        file="divergences.py",
        old="return float(mean), float(var.clamp_min(0.0).sqrt())",
        new="return float(mean), float(var.clamp_min(0.0))",
        breaks="the moment-matching (forward-KL) fit returns the mixture's variance as its standard deviation",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="reverse-kl-entropy-sign",
        file="divergences.py",
        old="neg_entropy = -0.5 * math.log(2 * math.pi * math.e * std ** 2)",
        new="neg_entropy = 0.5 * math.log(2 * math.pi * math.e * std ** 2)",
        breaks="the reverse KL uses +H(q) for E_q[log q]: wide q are penalized instead of rewarded, and "
               "the fits shrink",
        notebooks=NB, tests=TESTS,
    ),
]
