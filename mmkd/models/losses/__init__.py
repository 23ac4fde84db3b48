from .channel_wise import ChannelWiseLoss
from .feature_mse import FeatureMSELoss
from .holistic import HolisticLoss
from .imitation import ImitationLoss
from .kd import KDLoss
from .pair_wise import PairWiseLoss
from .pixel_wise import PixelWiseLoss

__all__ = [
    'ChannelWiseLoss', 'FeatureMSELoss', 'HolisticLoss', 'ImitationLoss',
    'KDLoss', 'PairWiseLoss', 'PixelWiseLoss'
]
