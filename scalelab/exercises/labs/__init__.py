"""The labs' public declarations: one module per lab (``labNN.py``), imported by the registry.

A module declares its lab with :func:`~scalelab.exercises.registry.lab` and
adds its exercises in notebook order. It holds what a student may see — the
prompts, the points, what an answer must look like, which runs a check reads,
the live step a component must pass — and nothing that decides whether an
answer is right: that lives in the instructor's tree (``instructor/labs/``).
"""
