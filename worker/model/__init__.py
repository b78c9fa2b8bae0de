"""The model: runtime (setup once, predict many), loading, device, generation, prompts, prompt cache."""
