# The same detector trained with PS-KD in the RoI classifier: targets (1 - alpha_t) y + alpha_t p_{t-1}
# on every sampled RoI, p_{t-1} from the previous epoch's box head (PSKDRoIHead), alpha_t from
# common's linear schedule (alpha_T, common's DEFAULT_ALPHA_T unless set here, at the last epoch); PSKDHook
# moves the head on at each epoch start.
_base_ = './faster-rcnn_r152_fpn_voc07.py'
model = dict(
    roi_head=dict(
        type='PSKDRoIHead',
        schedule='linear',
        bbox_head=dict(loss_cls=dict(_delete_=True, type='PSKDClsLoss', loss_weight=1.0))))
custom_hooks = [dict(type='PSKDHook')]
