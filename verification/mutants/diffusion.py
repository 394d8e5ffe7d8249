"""Textbook mistakes in ``course_lib/diffusion.py`` (DDPM), each caught by notebooks 04-05 and a unit test.

Every entry names the classic error it plants, where (REFERENCES.md A0-A3, C1-C4, C17 give the
conventions), and what it breaks. Run with ``python3 course.py mutations NAME ...``.
"""

from verification.mutations import Mutation

NB = ("04", "05")
TESTS = ("tests/test_diffusion.py",)

MUTATIONS = [
    Mutation(
        name="posterior-variance-beta",
        file="diffusion.py",
        old="self.posterior_variance = b * (1.0 - ab_prev) / (1.0 - ab)",
        new="self.posterior_variance = b * 1.0",
        breaks="the forward posterior and the 'small' reverse step use beta_t instead of "
               "beta-tilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t) (a common typo)",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="eps-weight-sqrt-dropped",
        file="diffusion.py",
        old="- _extract(schedule.sqrt_recipm1_alphas_cumprod, t, xt) * eps)",
        new="- _extract(schedule.sqrt_recipm1_alphas_cumprod, t, xt) ** 2 * eps)",
        breaks="x0_hat and the reverse mean weight eps by (1 - abar)/abar instead of its square root "
               "(Ho et al. Eq. 11 with beta/(1 - abar) for beta/sqrt(1 - abar))",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="eps-weight-dropped",
        file="diffusion.py",
        old="- _extract(schedule.sqrt_recipm1_alphas_cumprod, t, xt) * eps)",
        new="- eps)",
        breaks="x0_hat and the reverse mean subtract eps with weight 1 instead of sqrt(1/abar - 1)",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="q-sample-t-plus-one",
        file="diffusion.py",
        old="""    return (_extract(schedule.sqrt_alphas_cumprod, t, x0) * x0
            + _extract(schedule.sqrt_one_minus_alphas_cumprod, t, x0) * noise)""",
        new="""    t = (t + 1).clamp(max=schedule.num_steps - 1)
    return (_extract(schedule.sqrt_alphas_cumprod, t, x0) * x0
            + _extract(schedule.sqrt_one_minus_alphas_cumprod, t, x0) * noise)""",
        breaks="q_sample (and so training and the bound) noises to step t+1: the 0-based index "
               "read as the paper's 1-based one (REFERENCES.md C1)",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="alphas-cumprod-prev-misaligned",
        file="diffusion.py",
        old="self.alphas_cumprod_prev = torch.cat([ab.new_ones(1), ab[:-1]])",
        new="self.alphas_cumprod_prev = torch.cat([ab.new_ones(1), ab[1:]])",
        breaks="alphas_cumprod_prev[t] is abar_t instead of abar_{t-1} for t >= 1 (shifted by one): "
               "the posterior's mean coefficients and variance are wrong",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="q-sample-abar-no-sqrt",
        file="diffusion.py",
        old="return (_extract(schedule.sqrt_alphas_cumprod, t, x0) * x0",
        new="return (_extract(schedule.alphas_cumprod, t, x0) * x0",
        breaks="q_sample scales x0 by abar_t instead of sqrt(abar_t): x_t is not variance preserving",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="p-sample-noise-at-t0",
        file="diffusion.py",
        old="return (t != 0).to(dtype)",
        new="return (t >= 0).to(dtype)",
        breaks="the last reverse step (0-based t = 0) adds noise (p_sample and sample); Algorithm 2 "
               "sets z = 0 there",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="posterior-mean-coefs-swapped",
        file="diffusion.py",
        old="""    mean = (_extract(schedule.posterior_mean_coef1, t, xt) * x0
            + _extract(schedule.posterior_mean_coef2, t, xt) * xt)""",
        new="""    mean = (_extract(schedule.posterior_mean_coef2, t, xt) * x0
            + _extract(schedule.posterior_mean_coef1, t, xt) * xt)""",
        breaks="the forward posterior mean weights x0 by the x_t coefficient and x_t by the x0 one",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="cosine-schedule-no-square",
        file="diffusion.py",
        old="f = torch.cos((u + s) / (1.0 + s) * math.pi / 2.0) ** 2",
        new="f = torch.cos((u + s) / (1.0 + s) * math.pi / 2.0)",
        breaks="the cosine schedule's abar(u) is cos instead of cos^2 (REFERENCES.md C4, "
               "lilianweng.github.io#9)",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="tweedie-sign-optimal-eps",
        file="diffusion.py",
        old="eps = -torch.sqrt(1.0 - ab) * score",
        new="eps = torch.sqrt(1.0 - ab) * score",
        breaks="the exact E[eps | x_t] of a mixture has the wrong sign: eps = +sqrt(1 - abar) score",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="ddim-direction-current-abar",
        file="diffusion.py",
        old="c_dir = torch.sqrt((1 - ab_prev - sigma ** 2).clamp_min(0.0))",
        new="c_dir = torch.sqrt((1 - ab - sigma ** 2).clamp_min(0.0))",
        breaks="DDIM's direction term uses sqrt(1 - abar_t) instead of sqrt(1 - abar_prev - sigma^2) "
               "(Song et al. 2021, Eq. 12)",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="optimal-variance-coef-not-squared",
        file="diffusion.py",
        old="c2 = schedule.posterior_mean_coef1[i].to(x0.dtype) ** 2",
        new="c2 = schedule.posterior_mean_coef1[i].to(x0.dtype)",
        breaks="the ELBO-best reverse variance adds c_t E||x0 - x0_hat||^2 / D instead of c_t^2 times it",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="prior-kl-mean-abar-no-sqrt",
        file="diffusion.py",
        old="prior_mean = _extract(schedule.sqrt_alphas_cumprod, last, x0) * x0",
        new="prior_mean = _extract(schedule.alphas_cumprod, last, x0) * x0",
        breaks="L_T = KL(q(x_T | x0) || N(0, I)) with the mean abar_T x0 instead of sqrt(abar_T) x0",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="reverse-conditional-likelihood-unscaled",
        file="diffusion.py",
        old="precision = 1 / v + a / b",
        new="precision = 1 / v + 1 / b",
        breaks="the true reverse step q(x_{t-1} | x_t) of a mixture drops alpha_t from the likelihood's "
               "precision (N(x_t; sqrt(alpha_t) x_{t-1}, beta_t) read as a density of x_{t-1} with variance beta_t)",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="indi-step-not-divided-by-t",
        file="diffusion.py",
        old="        r = (t - t_next) / t\n",
        new="        r = t - t_next\n",
        breaks="InDI's Euler step moves a fraction tau of the way to the denoiser instead of tau / t: the "
               "sampler never reaches the data at t = 0",
        notebooks=("05",), tests=TESTS,
    ),
    Mutation(
        name="indi-update-std-ratio-not-squared",
        file="diffusion.py",
        old="c2 = s_next**2 - (t_next / t) ** 2 * s**2",
        new="c2 = s_next**2 - (t_next / t) * s**2",
        breaks="InDI's stochastic step adds noise with variance s_{t'}^2 - (t'/t) s_t^2 instead of "
               "s_{t'}^2 - (t'/t)^2 s_t^2: the samples no longer follow the marginals p_t",
        notebooks=("05",), tests=TESTS,
    ),
]
