# Your own VOC-format data with your own class list (PS-KD in the RoI head). The folder data_root holds
#   Annotations/<id>.xml         VOC XML: <size>, and an <object> with <name> and <bndbox> per box
#   JPEGImages/<id>.jpg
#   ImageSets/Main/trainval.txt  the training image ids, one a line (test.txt: the evaluation ids)
# Set `classes` to your names as the XML writes them (matched ignoring case, spaces and '/'; objects of
# other names are skipped and counted in the log); the box head gets num_classes = len(classes).
#   python -m detection.train detection/configs/my_voc_classes_faster-rcnn_r18_pskd.py \
#       --work-dir results/own/detection/my_voc --cfg-options train_cfg.max_epochs=12
# record.json in the work dir then holds each class's AP (in %) under its name, and the mAP; TensorBoard
# logs are under the work dir's <timestamp>/vis_data.
# This is the CPU-sized demo detector (ResNet-18 FPN, random init, images resized to at most 224x160). For
# the paper's detector (ResNet-152 FPN from a classification checkpoint, mmdet's VOC sizes) put
# _base_ = './faster-rcnn_r152_fpn_voc07_pskd.py' instead and keep the lines below it.
_base_ = './demo_faster-rcnn_r18_synthetic_pskd.py'
data_root = 'data/my_voc/'
classes = ('apple', 'pear', 'plum')
model = dict(roi_head=dict(bbox_head=dict(num_classes=len(classes))))
train_dataloader = dict(
    dataset=dict(dataset=dict(data_root=data_root, ann_file='ImageSets/Main/trainval.txt',
                              data_prefix=dict(sub_data_root=''), metainfo=dict(classes=classes))))
val_dataloader = dict(
    dataset=dict(data_root=data_root, ann_file='ImageSets/Main/test.txt', data_prefix=dict(sub_data_root=''),
                 metainfo=dict(classes=classes)))
test_dataloader = val_dataloader
