"""Django settings, split by concern. The environment is read only in ``config.env``."""
from .api import *  # noqa: F401,F403
from .apps import *  # noqa: F401,F403
from .base import *  # noqa: F401,F403
from .logs import *  # noqa: F401,F403
from .security import *  # noqa: F401,F403
from .stores import *  # noqa: F401,F403
from .tasks import *  # noqa: F401,F403
