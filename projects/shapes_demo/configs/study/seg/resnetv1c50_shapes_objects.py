# The study regime's pretraining of the segmentation teacher's backbone (the
# ImageNet analogue, as for the student): the teacher's ResNetV1c-50 (16 base
# channels, dilated as PSPNet's) classifies the objects of the pretraining
# pool, each cropped from its box (48 x 48 px; shapes_demo/classifier.py).
# The study's teacher takes its backbone.
_base_ = './resnetv1c18_shapes_objects.py'

model = dict(backbone=dict(depth=50, stem_channels=16, base_channels=16),
             in_channels=512)
