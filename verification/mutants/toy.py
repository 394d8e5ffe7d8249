"""Planted mistakes in ``course_lib/toy.py`` (the exact Gaussian mixtures and their posteriors).

Each names the notebook asserts and the unit tests expected to catch it; see
:mod:`verification.mutations`.
"""

from verification.mutations import Mutation

TESTS = ("tests/test_toy.py",)

MUTATIONS = [
    Mutation(
        name="mixture-score-std",
        file="toy.py",
        old="grads = -(x[:, None, :] - means) / (stds * stds)        ",
        new="grads = -(x[:, None, :] - means) / stds                ",
        breaks="the mixture's score divides by the std instead of the variance",
        notebooks=("06",), tests=TESTS,
    ),
    Mutation(
        name="mixture-log-weights-dropped",
        file="toy.py",
        old="return torch.log(weights) + self._component_log_probs(x, means, var)",
        new="return self._component_log_probs(x, means, var)",
        breaks="log p(x) without log w_k: the density integrates to K and the responsibilities ignore the weights",
        notebooks=("00",), tests=TESTS,
    ),
    Mutation(
        name="mixture-posterior-mean-swapped-variances",
        file="toy.py",
        old="post_mean = (var * y[:, None, :] + noise_var * means) / total",
        new="post_mean = (noise_var * y[:, None, :] + var * means) / total",
        breaks="the component posterior mean weights y by sigma^2 and the prior mean by s_k^2 (swapped)",
        notebooks=("06",), tests=TESTS,
    ),
    Mutation(
        name="convolve-adds-stds",
        file="toy.py",
        old="stds = torch.sqrt(self.stds * self.stds + sigma ** 2)",
        new="stds = self.stds + sigma",
        breaks="the noised mixture adds standard deviations instead of variances",
        notebooks=("06",), tests=TESTS,
    ),
    Mutation(
        name="sample-variance-as-std",
        file="toy.py",
        old="x = self.means[labels] + self.stds[labels] * eps  # x = mu_k + s_k * eps",
        new="x = self.means[labels] + self.stds[labels] ** 2 * eps  # x = mu_k + s_k * eps",
        breaks="samples scaled by the variance instead of the std (REFERENCES C16)",
        notebooks=("06",), tests=TESTS,
    ),
    Mutation(
        name="posterior-third-moment-cross-term",
        file="toy.py",
        old="return (resp[..., None] * (c ** 3 + 3 * post_var * c)).sum(1)",
        new="return (resp[..., None] * (c ** 3 + post_var * c)).sum(1)",
        breaks="the mixture posterior's third central moment sum_k r_k (c_k^3 + v_k c_k) instead of "
               "sum_k r_k (c_k^3 + 3 v_k c_k) (E[(c + sqrt(v) z)^3] = c^3 + 3 v c)",
        notebooks=("06",), tests=TESTS,
    ),
]
