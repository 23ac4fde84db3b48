# The study regime's variant: the default run's ../../det/pkd_shapes.py with
# the study's student (faster_rcnn_r18_fpn_shapes_student.py here: its backbone
# pretrained on another task) on the study's scenes. It trains for the study
# student's schedule, as every distilled student trains for its baseline's
# (run_demo.py --study).
_base_ = ['../../det/pkd_shapes.py', '../teacher_output_cache.py']

model = dict(
    student='{{fileDirname}}/faster_rcnn_r18_fpn_shapes_student.py')
