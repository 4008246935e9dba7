"""Admin commands run on the agent's box: payment links, the text-message outbox, call records."""
