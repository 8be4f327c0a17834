"""Robustness figures from clean and adversarial predictions.

Definitions (over the samples the attack finished):
- clean_accuracy: share predicted right before the attack.
- robust_accuracy: share still predicted right after it (a sample wrong to begin
  with counts as not robust; RobustBench's definition).
- attack_success_rate: share of the correctly predicted samples whose prediction the
  attack changed (1 - ART's `adversarial_accuracy` with true labels; absent when no
  sample was predicted right, as none was attacked). With a bound
  `eps`, a change counts only if the perturbation's norm is within it (decision-based
  attacks such as HopSkipJump always find *some* adversarial point, however far).
- perturbation_l2 / perturbation_linf: mean norm of the successful perturbations, in
  the attack space (each mutable column scaled to [0, 1]).
- queries_per_success: endpoint queries spent per successful adversarial example
  (absent when none succeeded).
"""

from __future__ import annotations

import numpy as np


def evasion_metrics(
    y: np.ndarray,
    clean_pred: np.ndarray,
    adv_pred: np.ndarray,
    z: np.ndarray,
    z_adv: np.ndarray,
    queries: int | None = None,
    eps: float | None = None,
    norm: float = 2.0,
) -> dict[str, float]:
    """Figures for samples with true labels `y`, predictions before/after, and the
    attack-space points before (`z`) and after (`z_adv`) the attack."""
    y, clean_pred, adv_pred = (np.asarray(a).ravel() for a in (y, clean_pred, adv_pred))
    n = len(y)
    if n == 0:
        return {"samples": 0.0}
    correct = clean_pred == y
    # a sample already wrong is not attacked: its "adversarial" prediction is the clean one
    adv_pred = np.where(correct, adv_pred, clean_pred)
    delta = (np.asarray(z_adv, dtype=np.float64) - np.asarray(z, dtype=np.float64)).reshape(n, -1)
    within = np.ones(n, dtype=bool) if eps is None else perturbation_norm(delta, norm) <= eps + 1e-6
    # an adversarial point outside the bound does not count: the sample keeps its clean answer
    adv_pred = np.where(within, adv_pred, clean_pred)
    fooled = correct & (adv_pred != y)
    out: dict[str, float] = {
        "samples": float(n),
        "clean_accuracy": float(correct.mean()),
        "robust_accuracy": float((adv_pred == y).mean()),
        "successes": float(fooled.sum()),
    }
    if correct.any():  # no sample predicted right: nothing was attacked, the rate is not measured
        out["attack_success_rate"] = float(fooled.sum() / correct.sum())
    if fooled.any():
        out["perturbation_l2"] = float(np.linalg.norm(delta[fooled], axis=1).mean())
        out["perturbation_linf"] = float(np.abs(delta[fooled]).max(axis=1).mean())
        if queries is not None:
            out["queries_per_success"] = float(queries / fooled.sum())
    return out


def perturbation_norm(delta: np.ndarray, norm: float) -> np.ndarray:
    """Norm of each row of `delta` (2 or inf)."""
    return np.linalg.norm(delta.reshape(len(delta), -1), ord=norm, axis=1)


def gradient_masking(
    blackbox_robust_accuracy: float, whitebox_robust_accuracy: float, samples: int
) -> bool:
    """True when a black-box attack beat the white-box ones by more than one sample.

    White-box attacks see the gradients; if a black-box attack does better, the
    gradients are likely masked (obfuscated) and white-box figures overstate robustness.
    """
    margin = 1.0 / max(samples, 1)
    return blackbox_robust_accuracy < whitebox_robust_accuracy - margin - 1e-9


# Every figure an attack may report, by name: SLOs may read these (`robust_accuracy >= 0.7
# during hsj`), and the scenario loader checks names in SLOs against this list.
ATTACK_METRIC_NAMES = frozenset({
    # evasion (black box and white box)
    "clean_accuracy", "robust_accuracy", "attack_success_rate", "perturbation_l2", "perturbation_linf",
    "queries_per_success", "samples", "successes", "queries", "requests", "server_errors", "throttled",
    "refused_queries", "refused_samples",
    "whitebox_robust_accuracy", "blackbox_robust_accuracy", "transfer_rate", "gradient_masking",
    "surrogate_accuracy",
    # poisoning
    "clean_accuracy_before", "clean_accuracy_after", "clean_accuracy_drop", "poison_rows",
    "poison_accepted", "poison_rejected", "poison_rejection_rate", "retrained",
    "backdoor_success_rate", "backdoor_success_rate_before", "backdoor_success_rate_after",
    # abuse
    "fuzz_cases", "crashes", "client_errors", "accepted", "alive", "flood_requests", "flood_ok",
    "flood_rate_limited", "rate_limited_share", "flood_timeouts", "flood_refused", "flood_reset",
    "flood_other_4xx", "flood_rate", "flood_p95_latency",
    "extraction_agreement", "extraction_queries",
    # prompt attacks on generative models (prompt.flood reports the flood figures above)
    "injection_success_rate", "leak_rate", "jailbreak_success_rate", "false_refusal_rate", "prompts",
    "benign_prompts",
})
