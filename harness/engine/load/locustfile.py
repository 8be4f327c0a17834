"""aftershock's locustfile: ModelUser sends the dataset through the protocol adapter,
ChatUser prompts to a generative (openai-*) target.

Started by harness.engine.load.process (never imported by the harness): the plugin import
registers the window recorder; the config (env AFTERSHOCK_LOAD_CONFIG) picks the shape.
"""

from harness.engine.load import plugin
from harness.engine.load.chat_user import ChatUser  # noqa: F401  (Locust collects them from here;
from harness.engine.load.locust_shapes import shape_class_for
from harness.engine.load.model_user import ModelUser  # noqa: F401  the command line picks one)

_config = plugin.config_from_env()
if _config is not None and (_shape := shape_class_for(_config.load)) is not None:
    AftershockShape = _shape
