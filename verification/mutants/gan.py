"""Planted mistakes in ``course_lib/gan.py`` (notebook 03; unit tests in ``tests/test_gan.py``).

Each is a classic error in GAN code: a flag or a sign swapped in a loss, the optimal discriminator
turned around, the mode-coverage protocol measured in the wrong units, the WGAN-GP penalty on the
squared norm, the generator's step taken uphill, or the discriminator not held fixed while the
generator steps. See :mod:`verification.mutations` for how they are run.
"""

from verification.mutations import Mutation

_NB = ("03",)
_TESTS = ("tests/test_gan.py",)

MUTATIONS = [
    Mutation(
        name="gan-saturating-flag-swapped",
        file="gan.py",
        old="    if saturating:\n        per_example = -F.softplus(fake_logits)",
        new="    if not saturating:\n        per_example = -F.softplus(fake_logits)",
        breaks="generator_loss returns the minimax loss when the non-saturating one is asked for, "
               "and the reverse",
        notebooks=_NB, tests=_TESTS,
    ),
    Mutation(
        name="gan-non-saturating-sign",
        file="gan.py",
        old="        per_example = F.softplus(-fake_logits)",
        new="        per_example = F.softplus(fake_logits)",
        breaks="the log-D trick as -log(1 - D(G(z))): the generator is rewarded for being rejected",
        notebooks=_NB, tests=_TESTS,
    ),
    Mutation(
        name="gan-discriminator-loss-fake-sign",
        file="gan.py",
        old="        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()",
        new="        return F.softplus(-real_logits).mean() + F.softplus(-fake_logits).mean()",
        breaks="the discriminator's loss on generated samples is -log D instead of -log(1 - D): D is "
               "trained to call samples real",
        notebooks=_NB, tests=_TESTS,
    ),
    Mutation(
        name="gan-optimal-discriminator-inverted",
        file="gan.py",
        old="    return torch.where(total > 0, p_data / torch.where(",
        new="    return torch.where(total > 0, p_model / torch.where(",
        breaks="D* = p_model / (p_data + p_model), the probability of 'fake' instead of 'real'",
        notebooks=_NB, tests=_TESTS,
    ),
    Mutation(
        name="gan-optimal-logit-sign",
        file="gan.py",
        old="        diff = p_data - p_model",
        new="        diff = p_model - p_data",
        breaks="the optimal logit from log densities as log p_model - log p_data",
        notebooks=_NB, tests=_TESTS,
    ),
    Mutation(
        name="gan-mode-coverage-threshold-inclusive",
        file="gan.py",
        old="    hq = best < threshold",
        new="    hq = best <= threshold",
        breaks="a sample exactly at 3 std counts as high quality (PacGAN's MetricLogger uses <)",
        notebooks=_NB, tests=_TESTS,
    ),
    Mutation(
        name="gan-mode-coverage-threshold-in-variances",
        file="gan.py",
        old="    dist = z.pow(2).sum(-1).sqrt()",
        new="    dist = z.pow(2).sum(-1)",
        breaks="the squared standardized distance compared with 3: the high-quality radius is "
               "sqrt(3) std instead of 3 std",
        notebooks=_NB, tests=_TESTS,
    ),
    Mutation(
        name="gan-mode-coverage-std-as-variance",
        file="gan.py",
        old="    z = (samples[:, None, :] - means[None, :, :]) / std[None, :, :]",
        new="    z = (samples[:, None, :] - means[None, :, :]) / std[None, :, :] ** 2",
        breaks="distances divided by the variance instead of the standard deviation (the "
               "std-as-variance confusion of some public toy code)",
        notebooks=_NB, tests=_TESTS,
    ),
    Mutation(
        name="gan-gradient-penalty-squared-norm",
        file="gan.py",
        old="    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()",
        new="    return grad.flatten(1).norm(dim=1).pow(2).mean()",
        breaks="the WGAN-GP penalty as ||grad||^2 (pushes the critic's slope to 0) instead of "
               "(||grad|| - 1)^2",
        notebooks=_NB, tests=_TESTS,
    ),
    Mutation(
        name="gan-wgan-critic-loss-sign",
        file="gan.py",
        old='    return _logits("fake_scores", fake_scores).mean() - _logits("real_scores", real_scores).mean()',
        new='    return _logits("real_scores", real_scores).mean() - _logits("fake_scores", fake_scores).mean()',
        breaks="the critic minimizes E f(x) - E f(G(z)), i.e. maximizes minus the Wasserstein estimate",
        notebooks=_NB, tests=_TESTS,
    ),
    Mutation(
        name="gan-generator-step-uphill",
        file="gan.py",
        old="        g_loss.backward()\n        opt_g.step()",
        new="        (-g_loss).backward()\n        opt_g.step()",
        breaks="train_gan's generator ascends its loss instead of descending it",
        notebooks=_NB, tests=_TESTS,
    ),
    Mutation(
        name="gan-dstar-not-held-fixed",
        file="gan.py",
        old="        b_d, a_d = b.detach(), a.detach().abs()",
        new="        b_d, a_d = b, a.abs()",
        breaks="the generator's gradient also flows through D* (the discriminator is not held fixed "
               "during the generator's step)",
        notebooks=_NB, tests=_TESTS,
    ),
    Mutation(
        name="lsgan-optimal-targets-swapped",
        file="gan.py",
        old='return t["a"] + (t["b"] - t["a"]) * d',
        new='return t["b"] + (t["a"] - t["b"]) * d',
        breaks="LSGAN's optimal discriminator (b p_data + a p_g) / (p_data + p_g) with the real and fake "
               "targets exchanged (Mao et al. 2017, Section 3.2)",
        notebooks=_NB, tests=_TESTS,
    ),
]
