"""MuJoCo control and manipulation tasks (placeholder: filled in by the MuJoCo work)."""

MUJOCO_ENTRIES: tuple = ()
