"""Planted mistakes in ``course_lib/gaussians.py``, each caught by notebook 02 and a unit test."""

from verification.mutations import Mutation

MUTATIONS = [
    Mutation(
        name="kl-standard-normal-logvar-sign",
        file="gaussians.py",
        old="    per_dim = 0.5 * (mean * mean + (torch.expm1(logvar) - logvar).clamp_min(0.0))",
        new="    per_dim = 0.5 * (mean * mean + (torch.expm1(logvar) + logvar).clamp_min(0.0))",
        breaks="the closed-form KL(N(mean, sigma^2) || N(0, I)) has a sign error, + log sigma^2 instead "
               "of - log sigma^2 (Kingma & Welling 2014, App. B)",
        notebooks=("02",),
        tests=("tests/test_gaussians.py",),
    ),
    Mutation(
        name="log-likelihood-missing-half",
        file="gaussians.py",
        old="    return -0.5 * (_LOG_2PI + logvar + z * z).sum(-1)",
        new="    return (-0.5 * (_LOG_2PI + logvar) - z * z).sum(-1)",
        breaks="the Gaussian log-likelihood drops the 1/2 in front of the squared error "
               "(x - mu)^2 / sigma^2: the density no longer integrates to 1, the L2 weight doubles",
        notebooks=("02",),
        tests=("tests/test_gaussians.py",),
    ),
    Mutation(
        name="cholesky-factor-upper",
        file="gaussians.py",
        old="        return chol\n",
        new="        return chol.mT\n",
        breaks="covariance_sqrt's Cholesky factor returned transposed (upper triangular U = L^T): "
               "U U^T = L^T L is not Sigma, so samples mu + U w have the wrong covariance",
        notebooks=("02",),
        tests=("tests/test_gaussians.py",),
    ),
]
