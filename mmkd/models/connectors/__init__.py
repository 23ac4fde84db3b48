from .conv_connector import ConvConnector
from .hint_regressor import HintRegressor

__all__ = ['ConvConnector', 'HintRegressor']
