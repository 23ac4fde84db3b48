from .connectors import *  # noqa: F401,F403
from .discriminators import *  # noqa: F401,F403
from .distillers import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
