"""Learner pieces shared by the reference agents: networks, replay, distributions, normalisation.

Everything here is a pure function or a Flax module over explicit arrays, so agents can keep it in their
state pytree and the harness can jit and vmap it over seeds.
"""
