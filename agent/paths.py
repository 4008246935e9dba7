"""Where the project's own files are, wherever the agent is started from."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The checkout (or /opt/voice-agent): holds models/, config/ and the venvs."""

NLU_DATA_DIR = PROJECT_ROOT / "models" / "nlu"
"""Rasa training data: config.yml, domain.yml, data/*.yml."""

DEFAULT_CONFIG = Path("config") / "agent.toml"
