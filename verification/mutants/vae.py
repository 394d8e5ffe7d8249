"""Planted mistakes in ``course_lib/vae.py`` (notebook 02), each caught by notebook 02 and a unit test."""

from verification.mutations import Mutation

MUTATIONS = [
    Mutation(
        name="reparameterize-variance",
        file="vae.py",
        old="    return mean + torch.exp(0.5 * logvar) * eps  # z = mu + sigma * eps",
        new="    return mean + torch.exp(logvar) * eps  # z = mu + sigma * eps",
        breaks="the reparameterized sample scales the noise by the variance instead of the standard "
               "deviation, so z has the wrong spread (and every Monte Carlo ELBO is off)",
        notebooks=("02",),
        tests=("tests/test_vae.py",),
    ),
    Mutation(
        name="iwae-mean-of-log-weights",
        file="vae.py",
        old="    return torch.logsumexp(log_w, 0) - math.log(num_samples)",
        new="    return log_w.mean(0)",
        breaks="the IWAE bound averages the log-weights instead of taking the log of their mean: it is "
               "the ELBO again for every K and no longer tightens towards log p(x)",
        notebooks=("02",),
        tests=("tests/test_vae.py",),
    ),
    Mutation(
        name="elbo-adds-kl",
        file="vae.py",
        old="    return ElboTerms(reconstruction=reconstruction, kl=kl, elbo=reconstruction - kl)",
        new="    return ElboTerms(reconstruction=reconstruction, kl=kl, elbo=reconstruction + kl)",
        breaks="the ELBO adds the KL term instead of subtracting it: no longer a lower bound on log p(x)",
        notebooks=("02",),
        tests=("tests/test_vae.py",),
    ),
    Mutation(
        name="linear-gaussian-posterior-cov-no-noise",
        file="vae.py",
        old="        return mean, self.noise_std**2 * m_inv",
        new="        return mean, m_inv",
        breaks="the linear-Gaussian posterior covariance drops the noise variance s^2 (M^-1 instead of "
               "s^2 M^-1): the exact posterior, and the encoder built from it, are too wide or too narrow",
        notebooks=("02",),
        tests=("tests/test_vae.py",),
    ),
    Mutation(
        name="linear-gaussian-logdet-lemma",
        file="vae.py",
        old="        logdet = (d - k) * math.log(s2) + 2.0 * torch.log(torch.diagonal(chol)).sum()",
        new="        logdet = d * math.log(s2) + 2.0 * torch.log(torch.diagonal(chol)).sum()",
        breaks="the matrix determinant lemma is misapplied (log det C = D log s^2 + log det M instead of "
               "(D - K) log s^2 + log det M): the exact log p(x) is off by a constant",
        notebooks=("02",),
        tests=("tests/test_vae.py",),
    ),
    Mutation(
        name="score-function-logvar-score",
        file="vae.py",
        old="        score_logvar = 0.5 * (eps.pow(2) - 1.0)",
        new="        score_logvar = 0.5 * eps.pow(2)",
        breaks="the score of the log-variance drops the -1/2 from the normalizing constant, so the "
               "REINFORCE estimate of d/dlogvar is biased (the score no longer has mean zero)",
        notebooks=("02",),
        tests=("tests/test_vae.py",),
    ),
    Mutation(
        name="optimal-decoder-normalized-over-z",
        file="vae.py",
        old="    return torch.softmax(log_q, dim=1) @ x_data",
        new="    return torch.softmax(log_q, dim=0) @ x_data",
        breaks="the optimal decoder mean normalizes q(z | x_i) over the evaluation points z instead of "
               "over the data points: no longer the posterior average E[x | z]",
        notebooks=("02",),
        tests=("tests/test_vae.py",),
    ),
    Mutation(
        name="reparameterize-full-factor-transposed",
        file="vae.py",
        old="else mean + noise @ a.mT  # x = mu + A w",
        new="else mean + noise @ a  # x = mu + A w",
        breaks="the full-covariance reparameterization computes mu + A^T w instead of mu + A w: with the "
               "Cholesky factor the samples have covariance L^T L, not Sigma",
        notebooks=("02",),
        tests=("tests/test_vae.py",),
    ),
]
