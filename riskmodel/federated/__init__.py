"""Vertical federated training between a bank (guest: labels + financial features) and the data hub
(host: non-financial signals), with an arbiter holding the training key. See docs/federated.md.

Modules: ``channel`` (logged, authenticated messages), ``crypto`` (Paillier via phe + gmpy2 on
fixed-point numbers, and a plaintext twin), ``alignment`` (intersection of pseudonymous ids),
``binning`` (federated WoE binning), ``parties`` (Guest, Host, Arbiter), ``lr`` (vertical logistic
regression), ``run`` (orchestration, centralized comparison, MLflow logging).
"""
