"""Simulated crowds.

- :mod:`crowd.simulation.confusion`: workers drawn as confusion matrices (and spammers); the Bayes oracle.
- :mod:`crowd.simulation.waum_crowds`: scikit-learn classifiers as workers (WAUM's three_circles, two_moons, many workers).
"""
