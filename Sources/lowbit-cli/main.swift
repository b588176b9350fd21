import LowBit
print("lowbit")
