"""The OpenAI API adapter of the runtime."""
