# The CPU demo with PS-KD in the RoI head (see faster-rcnn_r152_fpn_voc07_pskd.py).
_base_ = './demo_faster-rcnn_r18_synthetic.py'
model = dict(
    roi_head=dict(
        type='PSKDRoIHead',
        schedule='linear',
        bbox_head=dict(loss_cls=dict(_delete_=True, type='PSKDClsLoss', loss_weight=1.0))))
custom_hooks = [dict(type='PSKDHook')]
