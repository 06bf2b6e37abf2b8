"""Teachers that turn frames into pseudo-labels: optical flow and foreground masks.

* :mod:`labelers.base`: the interface (``FlowTeacher``, ``SegmentationTeacher``, ``TeacherIdentity``,
  ``SegmentationResult``) and the contracts every teacher keeps.
* :mod:`labelers.registry`: teachers by name (``build_flow_teacher``, ``build_seg_teacher``) and
  ``warmup_indices`` for ``begin_video``; importing it loads no teacher.
* weight-free teachers: :mod:`labelers.dis_flow` (``dis``, OpenCV DIS optical flow) and
  :mod:`labelers.bgsub_masks` (``bgsub``, OpenCV MOG2 background subtraction with a frozen background).

* the paper's teachers, with local weights files only: :mod:`labelers.gma_flow` (``gma``, GMA optical flow,
  network in :mod:`labelers.gma`) and :mod:`labelers.yolo_sam_masks` (``yolo-mobilesam``, YOLOv8 boxes
  prompting MobileSAM, through :mod:`labelers.ultralytics`, the one module that imports ultralytics).
"""
