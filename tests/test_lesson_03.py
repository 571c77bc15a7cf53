"""Lesson 03 (backbone and FPN): its self-checks have teeth."""

LESSON = "03_backbone_and_fpn.ipynb"

# P7 computed without the ReLU on P6 (same module names, so the package's weights still load).
P7_WITHOUT_RELU = '''
class MyPyramid(nn.Module):
    def __init__(self, in_channels, channels=256):
        super().__init__()
        c3, c4, c5 = in_channels
        self.lateral3 = nn.Conv2d(c3, channels, kernel_size=1)
        self.lateral4 = nn.Conv2d(c4, channels, kernel_size=1)
        self.lateral5 = nn.Conv2d(c5, channels, kernel_size=1)
        self.smooth3 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.smooth4 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.smooth5 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.p6 = nn.Conv2d(c5, channels, kernel_size=3, stride=2, padding=1)
        self.p7 = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)

    def forward(self, features):
        c3, c4, c5 = features
        t5 = self.lateral5(c5)
        t4 = self.lateral4(c4) + F.interpolate(t5, size=c4.shape[-2:], mode="nearest")
        t3 = self.lateral3(c3) + F.interpolate(t4, size=c3.shape[-2:], mode="nearest")
        p6 = self.p6(c5)
        return [self.smooth3(t3), self.smooth4(t4), self.smooth5(t5), p6, self.p7(p6)]
'''

# Counts multiply-adds (MACs) instead of FLOPs: half the number.
MULTIPLY_ADDS = '''
def conv_flops(conv, out_height, out_width):
    k_h, k_w = conv.kernel_size
    return conv.in_channels // conv.groups * k_h * k_w * conv.out_channels * out_height * out_width
'''


def test_fpn_check_catches_a_missing_relu_before_p7(check_rejects):
    check_rejects(LESSON, "impl-fpn", P7_WITHOUT_RELU, "check-fpn")


def test_flops_check_catches_multiply_adds(check_rejects):
    check_rejects(LESSON, "impl-conv-flops", MULTIPLY_ADDS, "check-conv-flops")
