"""Planted mistakes in ``course_lib/score.py`` (Langevin, score matching, Tweedie, SURE).

Each names the notebook-06 assert and the unit tests expected to catch it; see
:mod:`verification.mutations`.
"""

from verification.mutations import Mutation

NB = ("06",)
TESTS = ("tests/test_score.py",)

MUTATIONS = [
    Mutation(
        name="tweedie-sign",
        file="score.py",
        old="    return y + s ** 2 * score ",
        new="    return y - s ** 2 * score ",
        breaks="Tweedie's denoiser y - sigma^2 score instead of y + sigma^2 score: it moves away from the data",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="tweedie-covariance-unscaled-hessian",
        file="score.py",
        old="return s2[:, :, None] * (eye + s2[:, :, None] * hessian)",
        new="return s2[:, :, None] * (eye + hessian)",
        breaks="second-order Tweedie sigma^2 (I + H) instead of sigma^2 (I + sigma^2 H)",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="sure-divergence-sign",
        file="score.py",
        old="return residual - d * s2 + 2 * s2 * div ",
        new="return residual - d * s2 - 2 * s2 * div ",
        breaks="SURE with the divergence term's sign flipped: no longer an unbiased estimate of the MSE",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="ncsn-step-linear-ratio",
        file="score.py",
        old="eta_i = float(step_size) * sigma ** 2 / sigma_last ** 2",
        new="eta_i = float(step_size) * sigma / sigma_last",
        breaks="annealed Langevin step eta sigma_i / sigma_L instead of eta sigma_i^2 / sigma_L^2: the "
               "chain no longer mixes between modes at the large noise levels",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="langevin-noise-sqrt-step",
        file="score.py",
        old="    noise_scale = math.sqrt(2.0 * eta)\n",
        new="    noise_scale = math.sqrt(eta)\n",
        breaks="Langevin noise sqrt(step) instead of sqrt(2 step) (the paper's alpha/2 drift mixed with "
               "the code's step): the chain samples a density with half the variance",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="dsm-target-sign",
        file="score.py",
        old="target = -(x_tilde - x) / s_col ** 2",
        new="target = (x_tilde - x) / s_col ** 2",
        breaks="denoising score matching regresses on +(x~ - x)/sigma^2, the negated kernel score",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="annealed-dsm-eps-sign",
        file="score.py",
        old="per = 0.5 * ((sigma[:, None] * out + eps) ** 2).sum(1)",
        new="per = 0.5 * ((sigma[:, None] * out - eps) ** 2).sum(1)",
        breaks="NCSN's loss ||sigma s - eps||^2 instead of ||sigma s + eps||^2: the network learns minus the score",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="implicit-sm-missing-half",
        file="score.py",
        old="per = 0.5 * (s ** 2).sum(1) + _exact_trace(s, xx, create_graph)",
        new="per = (s ** 2).sum(1) + _exact_trace(s, xx, create_graph)",
        breaks="Hyvarinen's loss ||s||^2 + tr(grad s) without the 1/2: its minimizer is half the score",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="sliced-unit-sphere-probes",
        file="score.py",
        old="        v = _probes(xx.shape, probe, generator, x)\n",
        new="        v = _probes(xx.shape, probe, generator, x)\n        v = v / v.norm(dim=1, keepdim=True)\n",
        breaks="sliced score matching with probes on the unit sphere (E[vv^T] = I/D): the loss is no "
               "longer Hyvarinen's in expectation (REFERENCES C14)",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="tweedie-cumulants-powers-shifted",
        file="score.py",
        old="powers = s2 ** torch.arange(1, order + 1, dtype=y.dtype, device=y.device)[:, None, None]",
        new="powers = s2 ** torch.arange(0, order, dtype=y.dtype, device=y.device)[:, None, None]",
        breaks="higher-order Tweedie scales the k-th derivative of the log-partition by sigma^(2k - 2) "
               "instead of sigma^(2k): every posterior cumulant is off by sigma^2",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="sliced-variance-missing-two",
        file="score.py",
        old="var = 2 * (b ** 2).sum((1, 2))                                # 2 tr(B^2)",
        new="var = (b ** 2).sum((1, 2))                                # 2 tr(B^2)",
        breaks="the variance of sliced score matching with Gaussian probes as tr(B^2)/M instead of "
               "2 tr(B^2)/M (Var(v^T B v) = 2 tr(B^2) for v ~ N(0, I))",
        notebooks=NB, tests=TESTS,
    ),
]
