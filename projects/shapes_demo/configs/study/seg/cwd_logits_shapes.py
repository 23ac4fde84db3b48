# The study regime's variant: the default run's ../../seg/cwd_logits_shapes.py
# with the study's student (pspnet_r18_shapes_student.py here: its backbone
# pretrained on another task). It trains for the study student's schedule, as
# every distilled student trains for its baseline's (run_demo.py --study).
_base_ = ['../../seg/cwd_logits_shapes.py', '../teacher_output_cache.py']

model = dict(student='{{fileDirname}}/pspnet_r18_shapes_student.py')
