"""Voice: audio messages transcribed before the pipeline answers them, replies spoken after (pure helpers
here; the stages are `pipeline.stages.transcribe` and `pipeline.stages.speak`)."""
