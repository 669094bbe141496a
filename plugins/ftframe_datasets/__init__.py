"""Datasets shipped with ftframe for the embedded tasks (see each folder's README)."""
