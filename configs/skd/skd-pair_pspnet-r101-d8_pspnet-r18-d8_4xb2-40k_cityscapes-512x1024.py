# SKD pair-wise term alone: the affinity graph of the student's PSP module
# output imitates the teacher's (lambda_pa 1).
# Nodes: the OFFICIAL definition (max pooling, kernel = stride =
# int(0.5 * side), ceil mode): 2x2 nodes on the 64x128 map of a 512x1024
# crop (3x3 on the official 65x65). The paper's would be node_size=2,
# pool='avg' (TPAMI), i.e. 32x64 nodes.
_base_ = './_base_/skd_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_cityscapes-512x1024.py'

model = dict(distill_losses=dict(pair={{_base_.skd_losses.pair}}))
