"""Planted mistakes in ``course_lib/sde.py`` (SDE kernels, reverse-time samplers, the
probability-flow ODE and its likelihood, flow matching).

Each names the notebook-07 assert and the unit tests expected to catch it; see
:mod:`verification.mutations`. The comment above each mutation lists the unit tests of
``tests/test_sde.py`` that failed when it was planted (the whole file run against a copy of
``course_lib`` with the mistake) and the notebook-07 claim that catches it.
"""

from verification.mutations import Mutation

NB = ("07",)
TESTS = ("tests/test_sde.py",)

MUTATIONS = [
    # caught by test_reverse_sde_with_exact_score_recovers_the_mixture[VP, VE],
    #   test_pc_sampler_recovers_the_mixture[VP, VE]
    Mutation(
        name="reverse-sde-drift-sign",
        file="sde.py",
        old="return self._score_drift(x, t, score, 1.0)                          # f - g^2 s",
        new="return self._score_drift(x, t, score, -1.0)                          # f - g^2 s",
        breaks="the reverse-time SDE pushes along the score instead of against it: f + g^2 s",
        notebooks=NB, tests=TESTS,
    ),
    # caught by test_probability_flow_has_the_marginals_at_several_times[VP, VE],
    #   test_ddim_is_a_first_order_solver_of_the_probability_flow,
    #   test_ode_log_likelihood_equals_the_exact_log_density[VP, VE],
    #   test_ode_log_likelihood_hutchinson_is_unbiased
    Mutation(
        name="probability-flow-no-half",
        file="sde.py",
        old="return self._score_drift(x, t, score, 0.5)                          # f - 1/2 g^2 s",
        new="return self._score_drift(x, t, score, 1.0)                          # f - 1/2 g^2 s",
        breaks="the probability-flow ODE uses the reverse SDE's drift f - g^2 s (the 1/2 is lost)",
        notebooks=NB, tests=TESTS,
    ),
    # caught by test_kernel_matches_simulated_forward_sde[VP, VE],
    #   test_perturbed_mixture_has_the_marginal_mixture_law[VE]
    Mutation(
        name="kernel-std-without-sqrt",
        file="sde.py",
        old="std = torch.sqrt(self._marginal_var(tt)).to(x0.dtype).expand(x0.shape[0])",
        new="std = self._marginal_var(tt).to(x0.dtype).expand(x0.shape[0])",
        breaks="the perturbation kernel's std is its variance (the square root is missing)",
        notebooks=NB, tests=TESTS,
    ),
    # caught by test_vp_kernel_matches_published_values (its VE line),
    #   test_kernel_matches_simulated_forward_sde[VE]
    Mutation(
        name="ve-kernel-sigma-t",
        file="sde.py",
        old="return self.sigma_min ** 2 * torch.expm1(2.0 * t * self._log_ratio)",
        new="return self._sigma(t) ** 2",
        breaks="the VE kernel variance is sigma(t)^2 instead of sigma(t)^2 - sigma(0)^2 "
               "(score_sde's approximation, wrong for the SDE started at the data)",
        notebooks=NB, tests=TESTS,
    ),
    # caught by test_vp_kernel_matches_published_values,
    #   test_kernel_matches_simulated_forward_sde[VP], test_kernel_solves_the_moment_equations,
    #   test_vp_marginal_is_the_limit_of_ddpm, and 6 more
    Mutation(
        name="vp-log-mean-coeff-quarter",
        file="sde.py",
        old="return -0.25 * t ** 2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min",
        new="return -0.5 * t ** 2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min",
        breaks="the VP mean coefficient integrates beta(t)/2 wrongly: -1/2 t^2 (beta_max - beta_min) "
               "instead of -1/4",
        notebooks=NB, tests=TESTS,
    ),
    # caught by test_mixture_score_is_the_gradient_of_the_noised_log_density[VP],
    #   test_probability_flow_has_the_marginals_at_several_times[VP],
    #   test_ddim_is_a_first_order_solver_of_the_probability_flow,
    #   test_ode_log_likelihood_equals_the_exact_log_density[VP]
    Mutation(
        name="mixture-score-unscaled-components",
        file="sde.py",
        old="var = m * m * stds * stds + s2                                            # (N|1, K, D)",
        new="var = stds * stds + s2                                            # (N|1, K, D)",
        breaks="the noised mixture's component variances ignore the scaling by m(t): s_k^2 + s^2 "
               "instead of m^2 s_k^2 + s^2",
        notebooks=NB, tests=TESTS,
    ),
    # caught by test_reverse_sde_with_exact_score_recovers_the_mixture[VP, VE]
    Mutation(
        name="euler-maruyama-noise-dt",
        file="sde.py",
        old="return x_mean + g * math.sqrt(dt) * _randn(x.shape, generator, x.device, x.dtype)",
        new="return x_mean + g * dt * _randn(x.shape, generator, x.device, x.dtype)",
        breaks="the reverse SDE's noise scales with dt instead of sqrt(dt)",
        notebooks=NB, tests=TESTS,
    ),
    # caught by test_pc_sampler_recovers_the_mixture[VP, VE]
    Mutation(
        name="pc-corrector-step-not-squared",
        file="sde.py",
        old="step = 2.0 * alpha * (snr * z_norm / s_norm) ** 2",
        new="step = 2.0 * alpha * (snr * z_norm / s_norm)",
        breaks="the Langevin corrector's step is linear, not quadratic, in snr |z| / |s|",
        notebooks=NB, tests=TESTS,
    ),
    # caught by test_ode_log_likelihood_equals_the_exact_log_density[VP, VE]
    Mutation(
        name="likelihood-divergence-sign",
        file="sde.py",
        old="return np.concatenate([dx, div.detach().to(\"cpu\", torch.float64).numpy()])",
        new="return np.concatenate([dx, -div.detach().to(\"cpu\", torch.float64).numpy()])",
        breaks="the change of variables subtracts the integrated divergence instead of adding it",
        notebooks=NB, tests=TESTS,
    ),
    # caught by test_optimal_velocity_matches_importance_sampling[0.2, 0.5, 0.8],
    #   test_optimal_velocity_is_tweedie_on_the_path,
    #   test_optimal_velocity_at_the_ends, test_flow_matching_loss_minimum_for_a_gaussian,
    #   test_flow_matching_loss_is_stationary_at_the_optimal_velocity,
    #   test_flow_matching_sample_with_exact_velocity_follows_the_path
    Mutation(
        name="flow-velocity-covariance-sign",
        file="sde.py",
        old="cond = means + (tt * s2 - (1.0 - tt)) / var * diff",
        new="cond = means + (tt * s2 + (1.0 - tt)) / var * diff",
        breaks="the exact flow-matching velocity uses Cov[x1 - x0, x_t | k] = t s^2 + (1 - t) "
               "(the sign of x0's contribution is lost)",
        notebooks=NB, tests=TESTS,
    ),
    # caught by test_flow_matching_loss_minimum_for_a_gaussian,
    #   test_flow_matching_loss_is_stationary_at_the_optimal_velocity
    Mutation(
        name="flow-matching-target-reversed",
        file="sde.py",
        old="target = x1 - x0                                                  # d x_t / dt",
        new="target = x0 - x1                                                  # d x_t / dt",
        breaks="the flow-matching regression target is x0 - x1, the velocity of the reversed path",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="score-from-eps-sign",
        file="sde.py",
        old="return -out / _column(torch.sqrt(self.sde._marginal_var(tt)), x)    # -eps / s(t)",
        new="return out / _column(torch.sqrt(self.sde._marginal_var(tt)), x)    # -eps / s(t)",
        breaks="a noise predictor's score +eps / s(t) instead of -eps / s(t) (Tweedie: the score points "
               "against the noise)",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="discrete-eps-index-one-based",
        file="sde.py",
        old="tc = self.times.to(xt.device)[t.to(xt.device)].to(xt.dtype)",
        new="tc = self.times.to(xt.device)[(t.to(xt.device) - 1).clamp(min=0)].to(xt.dtype)",
        breaks="discrete_eps_model reads the 0-based step index as the paper's 1-based one: step i is "
               "evaluated at the time of step i - 1 (REFERENCES.md C1)",
        notebooks=NB, tests=TESTS,
    ),
    Mutation(
        name="noise-prediction-x0-unscaled",
        file="sde.py",
        old="out = _call(\"eps_fn\", eps_fn, m * x0 + s * noise, t.to(x0.dtype))",
        new="out = _call(\"eps_fn\", eps_fn, x0 + s * noise, t.to(x0.dtype))",
        breaks="the continuous-time noise-prediction loss noises x0 without the VP mean coefficient "
               "m(t): its inputs are not draws of x_t, so its minimizer is not E[eps | x_t]",
        notebooks=NB, tests=TESTS,
    ),
]
