# Table S3: Faster R-CNN + FPN with a ResNet-152 backbone pre-trained on ImageNet by the classification
# adapter (any method), trained on VOC2007 trainval (5,011 images) and tested on VOC2007 test (4,952),
# 11-point AP as in the VOC2007 devkit. Schedule: mmdet's VOC recipe (dataset repeated 3x, 4 epochs, lr
# 0.01 x0.1 after epoch 3: 12 passes over the data), batch 2 x 8 GPUs.
#   python -m detection.convert_backbone runs/imagenet-resnet152-ps_kd/checkpoint.pt work_dirs/r152_pskd.pth
#   python -m detection.train detection/configs/faster-rcnn_r152_fpn_voc07.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/r152_pskd.pth
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'
custom_imports = dict(imports=['detection'], allow_failed_imports=False)

data_root = 'data/VOCdevkit/'
model = dict(
    backbone=dict(depth=152, init_cfg=dict(type='Pretrained', checkpoint='work_dirs/backbones/resnet152.pth')))
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='RepeatDataset',
        times=3,
        dataset=dict(
            type='RobustVOCDataset',
            data_root=data_root,
            ann_file='VOC2007/ImageSets/Main/trainval.txt',
            data_prefix=dict(sub_data_root='VOC2007/'),
            filter_cfg=dict(filter_empty_gt=True, min_size=32, bbox_min_size=32),
            pipeline={{_base_.train_pipeline}})))
val_dataloader = dict(dataset=dict(type='RobustVOCDataset', data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(type='PerClassVOCMetric', metric='mAP', eval_mode='11points')
test_evaluator = val_evaluator
