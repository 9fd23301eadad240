#!/usr/bin/env python3
"""The example of the MjpgServer class frcstream began from, unchanged but for the import
(``from frcstream import MjpgServer`` instead of the class itself). Needs a camera at
/dev/video0 and ``pip install frcstream opencv-python-headless``. Open
http://localhost:8080/cam.html.
"""
from time import sleep

import cv2

from frcstream import MjpgServer

'''
Opencv capture example
'''
cap = cv2.VideoCapture(0)
cap.set(cv2.CAP_PROP_FRAME_WIDTH, 1920)
cap.set(cv2.CAP_PROP_FRAME_HEIGHT, 1080)
cap.set(cv2.CAP_PROP_SATURATION, 0.5)


def pull():
    global cap
    return cap.read()

'''
PIL
arr = '\x30\x12...'

def pull():
   img = Image.fromarray(arr)
   ok = img is not None
   return ok, img
'''

'''
RAW (Byte array or string)

def pull():
    img = bytearray(arr)
    ok = False
    if len(img) > 0:
        ok = True
    return ok, img

'''

if __name__ == '__main__':
    mjpg_server = MjpgServer(port=8080, name="cam")
    mjpg_server.attach_opencv(pull)
    mjpg_server.set_quality(50)
    mjpg_server.start(threaded=True)  # Remove if you want it to be the only thing running

    # While loop to eat the space away
    while True:
        print("FPS: %d" % mjpg_server.get_fps())  # Get 'real' fps (Calculated pulling)
        print("BAND(B): %.2f" % (mjpg_server.get_band_usage()))  # Get calculated bandwith (p.s. it gets
                                                                 # image size and real fps to calc)
        sleep(5)
