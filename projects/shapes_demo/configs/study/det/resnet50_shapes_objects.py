# The study regime's pretraining of the detection teacher's backbone (the
# ImageNet analogue, as for the student): the teacher's ResNet-50 (16 base
# channels) classifies the objects of the pretraining pool, each cropped from
# its box (48 x 48 px; shapes_demo/classifier.py). The study's teacher takes
# its backbone.
_base_ = './resnet18_shapes_objects.py'

model = dict(backbone=dict(depth=50, base_channels=16), in_channels=512)
