from .seg_discriminator import SegDiscriminator, SelfAttention

__all__ = ['SegDiscriminator', 'SelfAttention']
