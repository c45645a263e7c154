"""The course around the notebooks: their shared helpers, the shipped models and quality targets, the exercises'
checks and the student-notebook generator. Built on vae_lib.core and vae_lib.pictures."""
