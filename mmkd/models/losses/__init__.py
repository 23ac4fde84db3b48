from .channel_wise import ChannelWiseLoss
from .feature_mse import FeatureMSELoss
from .fgd import FGDLoss
from .holistic import HolisticLoss
from .imitation import ImitationLoss
from .kd import KDLoss
from .mgd import MGDLoss
from .pair_wise import PairWiseLoss
from .pixel_wise import PixelWiseLoss
from .pkd import PKDLoss

__all__ = [
    'ChannelWiseLoss', 'FeatureMSELoss', 'FGDLoss', 'HolisticLoss',
    'ImitationLoss', 'KDLoss', 'MGDLoss', 'PairWiseLoss', 'PixelWiseLoss',
    'PKDLoss'
]
